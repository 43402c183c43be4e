"""Message templates, including the four `system_*` prompts (original §1.13, §7.1).

Unlike the original, the system templates are inserted only when missing: a user's edit is never
overwritten on restart (original §10 item 8), and a duplicate title is a Conflict (409), not a 500.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from therascript_common.errors import Conflict, InvalidArgument, NotFound
from therascript_common.names import clean_name, name_key

from .clock import now_ms
from .storage.tables import TemplateRow

TITLE_MAX_CHARS = 200    # original §1.13
TEXT_MAX_CHARS = 10_000  # original §1.13

SESSION_SYSTEM_PROMPT = "system_prompt"
STANDALONE_SYSTEM_PROMPT = "system_standalone_prompt"

#: The sentence of the session system prompt that speaks of speaker labels; replaced when the session
#: hides speakers (original §2.1 step 3).
SPEAKER_LABEL_SENTENCE = (
    "Refer to the speakers by the exact labels used in the transcript (for example SPEAKER_00 or a name)."
)
SPEAKER_DESCRIPTIVE_SENTENCE = (
    "The transcript does not label its speakers; refer to them descriptively (for example the therapist "
    "or the client)."
)

SYSTEM_TEMPLATES: dict[str, str] = {
    SESSION_SYSTEM_PROMPT: (
        "You are an assistant helping a therapist review one of their own therapy sessions. Each message "
        "gives you the session transcript and the therapist's question. Answer from the transcript only; if "
        "the transcript does not say, say so instead of guessing. " + SPEAKER_LABEL_SENTENCE + " Be concise, "
        "factual and clinically neutral, and quote short passages when they support your answer."
    ),
    STANDALONE_SYSTEM_PROMPT: (
        "You are an assistant for a practising therapist. Answer clearly and concisely. This conversation "
        "has no session transcript attached; if a question depends on one, say so. Do not invent clinical "
        "facts, and point out when something needs professional judgement."
    ),
    "system_analysis_strategist": (
        "You plan an analysis that runs over several therapy session transcripts at once. Given the "
        "therapist's question, reply with a JSON object with two string fields: \"intermediate_question\", "
        "the question to ask of each single transcript so that the answers can later be combined, and "
        "\"final_synthesis_instructions\", how to combine the per-session answers into one final answer. "
        "Reply with the JSON object only."
    ),
    "system_short_prompt_generator": (
        "Summarise the user's request as a short title of at most eight words. Reply with the title only, "
        "without quotes or trailing punctuation."
    ),
}


def _clean(title: str, text: str) -> tuple[str, str]:
    """Title NFC-normalised and trimmed (1..200, no control/bidi/zero-width characters: names.clean_name) and
    text trimmed (1..10000); InvalidArgument listing the failing fields."""
    text = text.strip()
    failures = []
    try:
        title = clean_name(title)
    except ValueError as error:
        failures.append({"field": "title", "message": str(error)})
    if not 1 <= len(title) <= TITLE_MAX_CHARS:
        failures.append({"field": "title", "message": f"1 to {TITLE_MAX_CHARS} characters after trimming"})
    if not 1 <= len(text) <= TEXT_MAX_CHARS:
        failures.append({"field": "text", "message": f"1 to {TEXT_MAX_CHARS} characters after trimming"})
    if failures:
        raise InvalidArgument("Template title or text is invalid.", failures)
    return title, text


def _duplicate(title: str) -> Conflict:
    return Conflict(f"A template titled '{title}' already exists.")


def seed_system_templates(db: sessionmaker[Session]) -> int:
    """Inserts each system template that is missing (by title); never touches existing ones. Returns how many."""
    with db.begin() as tx:
        present = set(tx.scalars(select(TemplateRow.title).where(TemplateRow.title.in_(SYSTEM_TEMPLATES))))
        missing = [title for title in SYSTEM_TEMPLATES if title not in present]
        created = now_ms()
        tx.add_all(TemplateRow(title=title, title_key=name_key(title), text=SYSTEM_TEMPLATES[title],
                               created_at_ms=created) for title in missing)
    return len(missing)


def system_prompt(db: sessionmaker[Session], title: str) -> str:
    """The current text of a system template, or its built-in text if a user deleted it."""
    with db() as tx:
        text = tx.scalar(select(TemplateRow.text).where(TemplateRow.title == title))
    return text if text is not None else SYSTEM_TEMPLATES[title]


def list_templates(db: sessionmaker[Session]) -> list[TemplateRow]:
    """Every template, system ones included, newest first (original §1.13)."""
    with db() as tx:
        return list(tx.scalars(select(TemplateRow).order_by(TemplateRow.created_at_ms.desc(), TemplateRow.id.desc())))


def create_template(db: sessionmaker[Session], title: str, text: str) -> TemplateRow:
    """A new template; Conflict if the title is taken (compared by names.name_key: case and whitespace aside)."""
    title, text = _clean(title, text)
    row = TemplateRow(title=title, title_key=name_key(title), text=text, created_at_ms=now_ms())
    try:
        with db.begin() as tx:
            tx.add(row)
    except IntegrityError as error:
        raise _duplicate(title) from error
    return row


def update_template(db: sessionmaker[Session], template_id: int, title: str, text: str) -> TemplateRow:
    """Full replacement of title and text; NotFound, or Conflict if the new title is another's."""
    title, text = _clean(title, text)
    try:
        with db.begin() as tx:
            row = tx.get(TemplateRow, template_id)
            if row is None:
                raise NotFound(f"Template with ID {template_id} not found.")
            row.title, row.title_key, row.text = title, name_key(title), text
    except IntegrityError as error:
        raise _duplicate(title) from error
    return row


def delete_template(db: sessionmaker[Session], template_id: int) -> None:
    """Deletes a template; NotFound if there is none with that id."""
    with db.begin() as tx:
        row = tx.get(TemplateRow, template_id)
        if row is None:
            raise NotFound(f"Template with ID {template_id} not found.")
        tx.delete(row)
