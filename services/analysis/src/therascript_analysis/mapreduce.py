"""One analysis job run by the analysis worker (RQ queue `analysis`): plan (advanced mode), map, reduce.

- Plan: the model writes the per-session question and the synthesis instructions as JSON; an answer that is
  not that JSON fails the job with a clear message.
- Map: each session's transcript (sessions GetTranscript) is split at paragraph boundaries into chunks that fit
  the map context (CountTokens), and every chunk is asked the question; up to `map_concurrency` calls run at
  once. A session without text fails alone (its summary), the job continues.
- Reduce: the answers, in session-date order with each session's name and date, are reduced in one call when
  they fit, else in groups whose answers are reduced again (hierarchical), until one final call remains.

Every model call's answer is stored (intermediate_answers) before the next step uses it; a resumed run
(attempt + 1 after the worker died) reuses the completed ones. Every write is fenced by `attempt`. A watcher
thread stamps the heartbeat and polls the job row every `cancel_poll_s` seconds: when the job is canceled,
deleted or superseded it cancels the Generate calls in flight (which stops generation in llm-manager).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

import grpc
from sqlalchemy import select, update

from therascript.llm.v1 import llm_pb2
from therascript_common.errors import DomainError, NotFound
from therascript_common.logging import request_id_var

from . import prompts
from .chunking import SEPARATOR_TOKENS, chunk_paragraphs, group_items
from .clients import LlmClient, SessionsClient
from .events import EventLog
from .jobs import now_ms, updated
from .settings import AnalysisSettings
from .storage.database import Database
from .storage.tables import AnalysisJobRow, AnswerRow, SummaryRow

log = logging.getLogger(__name__)

TEMPLATE_TOKENS_PER_MESSAGE = 16   # chat-template tokens around each message (role markers), generous
MIN_TRANSCRIPT_BUDGET = 128        # tokens: below this a map call has no room for a transcript


class Stopped(Exception):
    """The job was canceled, deleted or superseded while this run worked on it."""


class JobFailed(Exception):
    """The job cannot complete; the message is what the user reads."""


class EmptyAnswer(Exception):
    """The model answered nothing."""


@dataclass
class WorkerContext:
    """Process-wide state of an analysis worker: set once by worker.main, used by every job."""

    db: Database
    events: EventLog
    sessions: SessionsClient
    llm: LlmClient
    settings: AnalysisSettings


_context: WorkerContext | None = None


def configure(context: WorkerContext) -> None:
    global _context
    _context = context


def run_analysis_job(job_id: int, attempt: int, request_id: str = "-") -> None:
    """RQ entry point. Never raises for a failed analysis (the failure is recorded on the job, with its
    terminal event); a crash of the worker is resumed by the service's reconciler."""
    if _context is None:
        raise RuntimeError("analysis worker not configured (worker.main sets it up)")
    token = request_id_var.set(request_id if request_id != "-" else f"analysis-{job_id}")
    try:
        AnalysisRun(_context, job_id, attempt).run()
    finally:
        request_id_var.reset(token)


@dataclass(frozen=True)
class Answer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    duration_ms: int
    reused: bool


class AnalysisRun:
    def __init__(self, context: WorkerContext, job_id: int, attempt: int) -> None:
        self.ctx = context
        self.settings = context.settings
        self.job_id = job_id
        self.attempt = attempt
        self.halted = threading.Event()      # stop starting work, cancel calls in flight
        self.finished = threading.Event()    # the run is over (ends the watcher)
        self._calls: set = set()
        self._lock = threading.Lock()
        self.model_calls = {"map": 0, "reduce": 0, "strategy": 0}

    # --- the job ----------------------------------------------------------------------------------
    def run(self) -> None:
        first = self._claim()
        if first is None:
            return
        watcher = threading.Thread(target=self._watch, name=f"analysis-watch-{self.job_id}", daemon=True)
        watcher.start()
        try:
            self._run(first)
        except Stopped:
            self._finish_stopped()
        except JobFailed as error:
            self._fail(str(error))
        except DomainError as error:
            self._fail(error.message)
        except Exception as error:
            log.exception("analysis job %s failed", self.job_id)
            self._fail(f"Analysis failed: {error}")
        finally:
            self.finished.set()
            self.halted.set()
            watcher.join(timeout=5)

    def _claim(self) -> str | None:
        """Moves a pending job of this attempt to its first working status; None when there is nothing to do."""
        with self.ctx.db.transaction() as tx:
            job = tx.get(AnalysisJobRow, self.job_id)
            if job is None or job.attempt != self.attempt:
                return None
            status, advanced, planned = job.status, job.use_advanced_strategy, job.strategy_json is not None
        if status == "canceling":
            self._finish_stopped()
            return None
        if status != "pending":
            return None
        first = "generating_strategy" if advanced and not planned else "mapping"
        if not self._transition(("pending",), first):
            return None
        return first

    def _run(self, first: str) -> None:
        job = self._job()
        context = self._context_size()
        strategy = job.strategy_json
        self._set_job(context_size=context)
        if first == "generating_strategy":
            self.ctx.events.append(self.job_id, "strategy", "status", status="generating_strategy")
            strategy = self._plan(job.original_prompt)
            if not self._transition(("generating_strategy",), "mapping", strategy_json=strategy):
                raise Stopped()
        self.ctx.events.append(self.job_id, "map", "status", status="mapping")
        items = self._map(job.original_prompt, strategy, context)
        if not self._transition(("mapping",), "reducing"):
            raise Stopped()
        self.ctx.events.append(self.job_id, "reduce", "status", status="reducing")
        final = self._reduce(job.original_prompt, strategy, context, items)
        if not self._transition(("reducing",), "completed", finished=True, final_result=final):
            raise Stopped()
        self.ctx.events.append(self.job_id, "status", "status", status="completed")
        log.info("analysis job %s completed (model calls %s)", self.job_id, self.model_calls)

    # --- plan ---------------------------------------------------------------------------------------
    def _plan(self, prompt: str) -> dict:
        def on_token(delta: str) -> None:
            self.ctx.events.append(self.job_id, "strategy", "token", delta=delta)

        try:
            answer = self._generate("strategy", "strategy", None, prompts.strategy_messages(prompt),
                                    self.settings.strategy_max_tokens, "analysis_strategy", on_token)
        except EmptyAnswer:
            raise JobFailed("Failed to generate analysis strategy: the model returned an empty answer.") from None
        try:
            strategy = prompts.parse_strategy(answer.text)
        except prompts.StrategyError as error:
            snippet = " ".join(answer.text.split())[:200]
            raise JobFailed(f"Failed to generate analysis strategy: {error} (the model answered: "
                            f"\"{snippet}\").") from None
        self.ctx.events.append(self.job_id, "strategy", "end", strategy=strategy)
        return strategy

    # --- map ----------------------------------------------------------------------------------------
    def _map(self, prompt: str, strategy: dict | None, context: int) -> list[tuple[SummaryRow, list[str]]]:
        """Maps every session not yet completed; returns (summary, chunk answers) of the completed sessions in
        session-date order."""
        overhead = self._overhead(prompts.map_messages(prompt, "", 'Session "x" (2026-01-01)', "part 99 of 99",
                                                       strategy))
        budget = context - self.settings.map_max_tokens - overhead
        if budget < MIN_TRANSCRIPT_BUDGET:
            raise JobFailed(f"The model's context window ({context} tokens) leaves no room for a transcript "
                            f"after the question and a {self.settings.map_max_tokens}-token answer.")
        summaries = self._summaries()
        tasks: list[tuple[SummaryRow, int, int, str, int]] = []
        for summary in summaries:
            if summary.status == "completed":
                continue
            chunks = self._chunks(summary, budget)
            if not chunks:
                continue
            for index, (text, tokens) in enumerate(chunks):
                tasks.append((summary, index, len(chunks), text, tokens + overhead))
        chunk_answers: dict[int, dict[int, str]] = {}
        failed: set[int] = set()

        def map_one(task: tuple[SummaryRow, int, int, str, int]) -> None:
            summary, index, count, text, prompt_tokens = task
            if self.halted.is_set() or summary.id in failed:
                return
            part = f"part {index + 1} of {count}" if count > 1 else ""
            try:
                answer = self._map_chunk(summary, index, count, part, text, prompt_tokens, prompt, strategy)
            except EmptyAnswer:
                failed.add(summary.id)
                self._summary_failed(summary.id, "The model returned an empty answer for this session.")
                return
            with self._lock:
                done = chunk_answers.setdefault(summary.id, {})
                done[index] = answer.text
                complete = len(done) == count
            if complete:
                self._summary_done(summary.id, [done[i] for i in range(count)])

        self._run_parallel(map_one, tasks)
        return [(s, answers) for s in self._summaries() if s.status == "completed"
                for answers in [self._chunk_texts(s)]]

    def _chunks(self, summary: SummaryRow, budget: int) -> list[tuple[str, int]]:
        """The session's transcript as chunks (text, tokens) that fit `budget`; [] (summary failed) when the
        session is gone or has no text."""
        try:
            paragraphs = self.ctx.sessions.get_transcript(summary.session_id)
        except NotFound:
            self._summary_failed(summary.id, "The session was deleted before it was analysed.")
            return []
        lines = [f"{p.speaker}: {p.text.strip()}" if p.HasField("speaker") and p.speaker else p.text.strip()
                 for p in paragraphs if p.text.strip()]
        if not lines:
            self._summary_failed(summary.id, "The session has no transcript text.")
            return []
        counts = self.ctx.llm.count_tokens(lines).counts
        chunks = chunk_paragraphs(lines, counts, budget)
        texts = ["\n\n".join(chunk) for chunk in chunks]
        tokens = self.ctx.llm.count_tokens(texts).counts
        with self._write() as tx:
            tx.execute(update(SummaryRow).where(SummaryRow.id == summary.id)
                       .values(status="processing", chunk_count=len(chunks), error_message=None))
        if len(chunks) > 1:
            self.ctx.events.append(self.job_id, "map", "log", summaryId=summary.id, sessionId=summary.session_id,
                                   message=f'Session "{summary.session_name}" does not fit the context in one '
                                           f"piece; it is analysed in {len(chunks)} parts.")
        return list(zip(texts, tokens, strict=True))

    def _map_chunk(self, summary: SummaryRow, index: int, count: int, part: str, text: str, prompt_tokens: int,
                   prompt: str, strategy: dict | None) -> Answer:
        ids = {"summaryId": summary.id, "sessionId": summary.session_id, "chunk": index + 1, "chunks": count}
        label = f'Session "{summary.session_name}" ({summary.session_date[:10]})'
        messages = prompts.map_messages(prompt, text, label, part, strategy)

        def on_token(delta: str) -> None:
            self.ctx.events.append(self.job_id, "map", "token", summaryId=summary.id, delta=delta)

        self.ctx.events.append(self.job_id, "map", "start", promptTokens=prompt_tokens, **ids)
        try:
            answer = self._generate(f"map:{summary.id}:{index}", "map", summary.id, messages,
                                    self.settings.map_max_tokens, "analysis_map", on_token)
        except EmptyAnswer:
            self.ctx.events.append(self.job_id, "map", "error", message="The model returned an empty answer.", **ids)
            raise
        self.ctx.events.append(self.job_id, "map", "end", promptTokens=answer.prompt_tokens,
                               completionTokens=answer.completion_tokens, duration=answer.duration_ms,
                               reused=answer.reused, **ids)
        return answer

    def _run_parallel(self, work: Callable[[tuple], None], tasks: list) -> None:
        """Runs `work` over `tasks` on up to `map_concurrency` threads; the first error halts the rest (calls in
        flight are cancelled) and is raised (a Stopped raised only because of that halt never masks it)."""
        if not tasks:
            return
        with ThreadPoolExecutor(max_workers=self.settings.map_concurrency, thread_name_prefix="map") as pool:
            futures = [pool.submit(work, task) for task in tasks]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            errors = [f.exception() for f in futures if f.done() and f.exception() is not None]
            if errors:
                self._halt()
            wait(futures)
        errors = [f.exception() for f in futures if f.exception() is not None]
        real = [e for e in errors if e is not None and not isinstance(e, Stopped)]
        if real:
            raise real[0]
        if errors or self.halted.is_set():
            raise Stopped()

    # --- reduce -------------------------------------------------------------------------------------
    def _reduce(self, prompt: str, strategy: dict | None, context: int,
                mapped: list[tuple[SummaryRow, list[str]]]) -> str:
        if not mapped:
            reasons = {s.error_message for s in self._summaries() if s.error_message}
            raise JobFailed("No session could be analysed" + (f": {'; '.join(sorted(reasons))}" if reasons else "."))
        items: list[str] = []
        for summary, answers in mapped:
            for index, text in enumerate(answers):
                part = f", part {index + 1} of {len(answers)}" if len(answers) > 1 else ""
                items.append(f'--- Analysis from Session "{summary.session_name}" '
                             f"({summary.session_date[:10]}){part} ---\n{text}")
        final_overhead = self._overhead(prompts.reduce_messages(prompt, "", strategy, final=True))
        group_overhead = self._overhead(prompts.reduce_messages(prompt, "", strategy, final=False))
        final_budget = context - self.settings.reduce_max_tokens - final_overhead
        group_budget = context - self.settings.map_max_tokens - group_overhead
        counts = self.ctx.llm.count_tokens(items).counts
        level = 1
        while _joined(counts) > final_budget:
            if group_budget < 2 * max(counts) + SEPARATOR_TOKENS:
                raise JobFailed(f"The model's context window ({context} tokens) is too small to combine the "
                                "intermediate answers.")
            groups = group_items(counts, group_budget)
            self.ctx.events.append(self.job_id, "reduce", "log",
                                   message=f"The {len(items)} intermediate answers do not fit one prompt; "
                                           f"combining them in {len(groups)} groups (level {level}).")
            items = [self._reduce_group(prompt, strategy, items, group, level, number, len(groups))
                     for number, group in enumerate(groups)]
            counts = self.ctx.llm.count_tokens(items).counts
            level += 1

        def on_token(delta: str) -> None:
            self.ctx.events.append(self.job_id, "reduce", "token", delta=delta)

        self.ctx.events.append(self.job_id, "reduce", "start", promptTokens=_joined(counts) + final_overhead)
        messages = prompts.reduce_messages(prompt, "\n\n".join(items), strategy, final=True)
        try:
            answer = self._generate("final", "reduce", None, messages, self.settings.reduce_max_tokens,
                                    "analysis_reduce", on_token)
        except EmptyAnswer:
            raise JobFailed("The model returned an empty final answer.") from None
        self.ctx.events.append(self.job_id, "reduce", "end", promptTokens=answer.prompt_tokens,
                               completionTokens=answer.completion_tokens, duration=answer.duration_ms,
                               reused=answer.reused)
        return answer.text

    def _reduce_group(self, prompt: str, strategy: dict | None, items: list[str], group: list[int], level: int,
                      number: int, total: int) -> str:
        if len(group) == 1:
            return items[group[0]]
        messages = prompts.reduce_messages(prompt, "\n\n".join(items[i] for i in group), strategy, final=False)
        try:
            answer = self._generate(f"reduce:{level}:{number}", "reduce", None, messages,
                                    self.settings.map_max_tokens, "analysis_reduce")
        except EmptyAnswer:
            raise JobFailed("The model returned an empty answer while combining intermediate answers.") from None
        self.ctx.events.append(self.job_id, "reduce", "log", message=f"Combined group {number + 1} of {total} "
                                                                     f"(level {level}).")
        return f"--- Combined analysis (group {number + 1} of {total}) ---\n{answer.text}"

    # --- model calls --------------------------------------------------------------------------------
    def _generate(self, key: str, kind: str, summary_id: int | None, messages: list[llm_pb2.ChatMessage],
                  max_tokens: int, purpose: str, on_token: Callable[[str], None] | None = None) -> Answer:
        """One model call whose answer is stored under `key`; a completed stored answer is returned as-is
        (`reused`). Raises Stopped (halted), EmptyAnswer, JobFailed (the model call failed)."""
        stored = self._stored_answer(key)
        if stored is not None and stored.status == "completed" and stored.text:
            return Answer(stored.text, stored.prompt_tokens or 0, stored.completion_tokens or 0,
                          stored.duration_ms or 0, True)
        if self.halted.is_set():
            raise Stopped()
        self._save_answer(key, kind, summary_id, status="processing")
        with self._lock:
            self.model_calls[kind] += 1
        started = time.monotonic()
        call = self.ctx.llm.generate(messages, max_tokens, self.settings.temperature, purpose)
        with self._lock:
            self._calls.add(call)
        text, usage = [], None
        try:
            if self.halted.is_set():
                call.cancel()
            for chunk in call:
                which = chunk.WhichOneof("chunk")
                if which == "content" and chunk.content:
                    text.append(chunk.content)
                    if on_token is not None:
                        on_token(chunk.content)
                elif which == "usage":
                    usage = chunk.usage
        except grpc.RpcError as error:
            if self.halted.is_set():
                raise Stopped() from None
            message = f"The model call failed ({error.code().name}): {error.details() or 'no detail'}"
            self._save_answer(key, kind, summary_id, status="failed", error_message=message)
            raise JobFailed(message) from None
        finally:
            with self._lock:
                self._calls.discard(call)
        if self.halted.is_set():
            raise Stopped()
        answer_text = "".join(text).strip()
        duration = usage.duration_ms if usage else int((time.monotonic() - started) * 1000)
        answer = Answer(answer_text, usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0,
                        duration, False)
        if not answer_text:
            self._save_answer(key, kind, summary_id, status="failed", error_message="empty answer")
            raise EmptyAnswer()
        self._save_answer(key, kind, summary_id, status="completed", text=answer_text,
                          prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
                          duration_ms=duration)
        if usage is not None and usage.model:
            self._set_job_model(usage.model)
        return answer

    def _halt(self) -> None:
        """Stops starting model calls and cancels those in flight (llm-manager stops their generation)."""
        self.halted.set()
        with self._lock:
            calls = list(self._calls)
        for call in calls:
            call.cancel()

    # --- watcher: heartbeat + cancel ------------------------------------------------------------------
    def _watch(self) -> None:
        last_beat = 0.0
        while not self.finished.wait(self.settings.cancel_poll_s):
            try:
                with self.ctx.db.transaction() as tx:
                    row = tx.execute(select(AnalysisJobRow.status, AnalysisJobRow.attempt)
                                     .where(AnalysisJobRow.id == self.job_id)).first()
                if row is None or row.attempt != self.attempt or row.status not in (
                        "generating_strategy", "mapping", "reducing"):
                    log.info("analysis job %s is %s; stopping its run", self.job_id,
                             "gone" if row is None else row.status)
                    self._halt()
                    return
                if time.monotonic() - last_beat >= self.settings.heartbeat_interval_s:
                    last_beat = time.monotonic()
                    with self.ctx.db.transaction() as tx:
                        tx.execute(update(AnalysisJobRow).where(AnalysisJobRow.id == self.job_id,
                                                                AnalysisJobRow.attempt == self.attempt)
                                   .values(heartbeat_at=time.time()))
            except Exception:
                log.warning("watcher pass failed for analysis job %s", self.job_id, exc_info=True)

    # --- storage (all fenced by attempt) ----------------------------------------------------------------
    def _job(self) -> AnalysisJobRow:
        with self.ctx.db.transaction() as tx:
            job = tx.get(AnalysisJobRow, self.job_id)
            if job is None or job.attempt != self.attempt:
                raise Stopped()
            return job

    class _Fenced:
        def __init__(self, run: AnalysisRun) -> None:
            self.run = run
            self.cm = run.ctx.db.transaction()

        def __enter__(self):
            tx = self.cm.__enter__()
            attempt = tx.scalar(select(AnalysisJobRow.attempt).where(AnalysisJobRow.id == self.run.job_id))
            if attempt != self.run.attempt:
                self.cm.__exit__(None, None, None)
                raise Stopped()
            return tx

        def __exit__(self, *exc):
            return self.cm.__exit__(*exc)

    def _write(self) -> AnalysisRun._Fenced:
        """A transaction that raises Stopped unless this run's attempt is still the job's."""
        return AnalysisRun._Fenced(self)

    def _transition(self, from_statuses: tuple[str, ...], to: str, finished: bool = False, **values: object) -> bool:
        query = (update(AnalysisJobRow)
                 .where(AnalysisJobRow.id == self.job_id, AnalysisJobRow.attempt == self.attempt,
                        AnalysisJobRow.status.in_(from_statuses))
                 .values(status=to, updated_at_ms=now_ms(), heartbeat_at=time.time(), **values))
        if finished:
            query = query.values(completed_at_ms=now_ms())
        with self.ctx.db.transaction() as tx:
            return updated(tx.execute(query))

    def _set_job(self, **values: object) -> None:
        with self.ctx.db.transaction() as tx:
            tx.execute(update(AnalysisJobRow).where(AnalysisJobRow.id == self.job_id,
                                                    AnalysisJobRow.attempt == self.attempt).values(**values))

    def _set_job_model(self, model: str) -> None:
        with self.ctx.db.transaction() as tx:
            tx.execute(update(AnalysisJobRow).where(AnalysisJobRow.id == self.job_id,
                                                    AnalysisJobRow.model_name.is_(None)).values(model_name=model))

    def _summaries(self) -> list[SummaryRow]:
        with self.ctx.db.transaction() as tx:
            return list(tx.scalars(select(SummaryRow).where(SummaryRow.job_id == self.job_id)
                                   .order_by(SummaryRow.session_date, SummaryRow.id)))

    def _chunk_texts(self, summary: SummaryRow) -> list[str]:
        with self.ctx.db.transaction() as tx:
            rows = {row.key: row.text for row in tx.scalars(select(AnswerRow).where(
                AnswerRow.job_id == self.job_id, AnswerRow.summary_id == summary.id,
                AnswerRow.status == "completed"))}
        texts = [rows.get(f"map:{summary.id}:{i}") for i in range(summary.chunk_count)]
        return [text for text in texts if text]

    def _summary_done(self, summary_id: int, answers: list[str]) -> None:
        text = answers[0] if len(answers) == 1 else "\n\n".join(
            f"Part {i + 1} of {len(answers)}:\n{a}" for i, a in enumerate(answers))
        with self._write() as tx:
            tx.execute(update(SummaryRow).where(SummaryRow.id == summary_id)
                       .values(status="completed", summary_text=text, error_message=None))

    def _summary_failed(self, summary_id: int, message: str) -> None:
        with self._write() as tx:
            tx.execute(update(SummaryRow).where(SummaryRow.id == summary_id)
                       .values(status="failed", error_message=message))

    def _stored_answer(self, key: str) -> AnswerRow | None:
        with self.ctx.db.transaction() as tx:
            return tx.scalar(select(AnswerRow).where(AnswerRow.job_id == self.job_id, AnswerRow.key == key))

    def _save_answer(self, key: str, kind: str, summary_id: int | None, **values: object) -> None:
        with self._write() as tx:
            row = tx.scalar(select(AnswerRow).where(AnswerRow.job_id == self.job_id, AnswerRow.key == key))
            if row is None:
                row = AnswerRow(job_id=self.job_id, key=key, kind=kind, summary_id=summary_id)
                tx.add(row)
            for name in ("text", "error_message", "prompt_tokens", "completion_tokens", "duration_ms"):
                setattr(row, name, values.get(name))
            row.status = str(values["status"])
            row.attempt = self.attempt
            row.updated_at_ms = now_ms()

    def _context_size(self) -> int:
        """Tokens of the loaded context window (fallback when none is reported), capped by the setting."""
        reported = self.ctx.llm.count_tokens(["x"]).context_size or self.settings.fallback_context_size
        limit = self.settings.context_limit_tokens
        return min(reported, limit) if limit else reported

    def _overhead(self, messages: list[llm_pb2.ChatMessage]) -> int:
        counts = self.ctx.llm.count_tokens([m.content for m in messages]).counts
        return sum(counts) + TEMPLATE_TOKENS_PER_MESSAGE * (len(messages) + 1)

    # --- endings ----------------------------------------------------------------------------------------
    def _finish_stopped(self) -> None:
        """A cancel request this run saw: canceling → canceled (other reasons to stop leave the row alone)."""
        if self._transition(("canceling",), "canceled", finished=True):
            self.ctx.events.append(self.job_id, "status", "status", status="canceled")
            log.info("analysis job %s canceled", self.job_id)

    def _fail(self, message: str) -> None:
        if self._transition(("pending", "generating_strategy", "mapping", "reducing"), "failed", finished=True,
                            error_message=message):
            self.ctx.events.append(self.job_id, "status", "status", status="failed", message=message)
            log.warning("analysis job %s failed: %s", self.job_id, message)
        else:
            self._finish_stopped()


def _joined(counts: list[int]) -> int:
    return sum(counts) + SEPARATOR_TOKENS * max(0, len(counts) - 1)
