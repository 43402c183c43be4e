"""The model prompts of an analysis job (original §3: the map, reduce and strategist messages) and the parse of
the strategist's JSON."""

from __future__ import annotations

import json
import re

from therascript.llm.v1 import llm_pb2


class StrategyError(ValueError):
    """The strategist's answer is not the JSON object asked for."""


def _msg(role: int, content: str) -> llm_pb2.ChatMessage:
    return llm_pb2.ChatMessage(role=role, content=content)  # type: ignore[arg-type]


SYSTEM, USER = llm_pb2.ROLE_SYSTEM, llm_pb2.ROLE_USER


def map_messages(prompt: str, transcript: str, session_label: str, part: str,
                 strategy: dict | None) -> list[llm_pb2.ChatMessage]:
    """One map call: the question over one session's transcript (or one chunk of it: `part` like "part 2 of 3")."""
    where = f'{session_label}{f", {part}" if part else ""}'
    if strategy:
        return [_msg(SYSTEM, f'Your task is to follow the user\'s instructions precisely. Original question: "{prompt}"'),
                _msg(USER, f'TASK: {strategy["intermediate_question"]}\n\nTRANSCRIPT ({where}): """{transcript}"""')]
    return [_msg(USER, f'USER\'S QUESTION: "{prompt}"\n\nTRANSCRIPT ({where}): """{transcript}"""\n\n'
                       "YOUR TASK: Answer the question as a concise summary based only on this transcript "
                       "(max 250 words). If it holds nothing relevant, say so in one sentence.")]


def reduce_messages(prompt: str, answers: str, strategy: dict | None, final: bool) -> list[llm_pb2.ChatMessage]:
    """A reduce call over intermediate answers (session-date order). `final` False = one group of a hierarchical
    reduce, whose answer is reduced again."""
    task = ("Create a single, cohesive answer to the question based only on the intermediate answers, in the "
            "order of the sessions." if final else
            "Combine these intermediate answers into one shorter answer that keeps every fact relevant to the "
            "question, with the sessions' names and dates.")
    if strategy and final:
        return [_msg(SYSTEM, strategy["final_synthesis_instructions"]),
                _msg(USER, f'USER\'S QUESTION: "{prompt}"\n\nINTERMEDIATE ANSWERS:\n"""{answers}"""')]
    return [_msg(USER, f'USER\'S QUESTION: "{prompt}"\n\nINTERMEDIATE ANSWERS (one per session, oldest first):\n'
                       f'"""{answers}"""\n\nYOUR TASK: {task}')]


def strategy_messages(prompt: str) -> list[llm_pb2.ChatMessage]:
    """The strategist call (advanced mode): the per-session question and the synthesis instructions as JSON."""
    return [_msg(USER, "You plan an analysis over several therapy session transcripts, read one at a time in "
                       "chronological order. Split the user's query into (1) a question to ask of each single "
                       "transcript, ending with a length limit, and (2) instructions for combining the per-session "
                       "answers into the final answer.\n"
                       'Reply with ONLY a JSON object: {"intermediate_question": "...", '
                       '"final_synthesis_instructions": "..."}\n\n'
                       f'USER QUERY: "{prompt}"')]


_THINK = re.compile(r"<think>.*?</think>|<tool_call>.*?</tool_call>", re.DOTALL)


def parse_strategy(text: str) -> dict:
    """The first JSON object in `text` (think blocks and code fences ignored) with string fields
    `intermediate_question` and `final_synthesis_instructions`. Raises StrategyError saying what was wrong."""
    cleaned = _THINK.sub("", text).replace("```json", "").replace("```", "")
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(cleaned) if ch == "{"):
        try:
            value, _ = decoder.raw_decode(cleaned, start)
        except json.JSONDecodeError:
            continue
        if not isinstance(value, dict):
            continue
        fields = ("intermediate_question", "final_synthesis_instructions")
        missing = [f for f in fields if not isinstance(value.get(f), str) or not value[f].strip()]
        if missing:
            raise StrategyError(f"the JSON object lacks {', '.join(missing)}")
        return {f: value[f].strip() for f in fields}
    raise StrategyError("the answer contains no JSON object")
