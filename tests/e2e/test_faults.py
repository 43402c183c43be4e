"""Faults under load (issue 13, "Faults"), sized to a few minutes: while a light load runs — CHATS standalone chats
streaming one short reply after another over SSE, one uploader of a short speech recording every UPLOAD_PAUSE_S,
one poller of `GET /api/sessions` — each service and worker in turn is killed with SIGKILL (its whole process
group) and the supervisor starts it again, as `scripts/up` does.

The clients do what the contract asks of them: a 503 with the error body `{"error", "message"}`, a refused or
broken connection (the gateway itself restarting), or a reply stream that ends with its error event instead of
`done` is retried after RETRY_PAUSE_S. Every request runs under a timeout; a timeout is a hang, and a hang is a
finding, as is any other 5xx, a 5xx without the error body, or an unexpected status.

For each fault it passes when: the process is back (a new pid, healthy) within RECOVER_S; every client kind
(chat, upload, poll) has succeeded again after that within FLOW_S; no finding was recorded during the fault;
every reply that ended with `done` is persisted (its user message, then the AI message with the streamed text);
every session ends `completed` or `failed` (never stuck) with one set of paragraphs (ids 0..n-1, at most the
recording's sentences plus slack). And per process:
- transcriber: killed mid-transcription of a longer recording, that session ends completed (attempt 2) or failed;
- analysis-worker: killed mid-job, the analysis job is resumed and completes (not stuck, not failed);
- analysis: killed while a job runs and a client watches its SSE stream: the stream ends at once (not a hang),
  the job still completes (the worker does not need the gRPC service), and the stream resumes after recovery;
- ops: an export being read when it is killed ends at once as a broken download (no manifest: import would
  refuse it), never hanging nor ending cleanly; after recovery an export is a complete archive with its manifest;
- redis: uploads refused with 503 while it is down, none lost after (the reconciler re-enqueues what the
  append-only file had not yet written);
- elasticsearch: a chat message sent during the outage is found by search once it is back (the outbox catches up).
Figures (`pytest -s`): per fault, seconds until healthy and until every client kind succeeded again, retries by
kind, the longest request and the longest reply stream.

The test runs its own system (every process of the table, supervised, authentication on) so that replies and
analysis answers can be capped at a few tokens, and so that the crashes touch no other test's system. On the
2-CPU machine it takes about 4.5 minutes when nothing else runs (starting the system ~60 s, Elasticsearch's
restart under load ~75 s, the transcriber's ~50 s with its retried job), up to ~9 under a load average of 8.
"""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
from dialogue import TWO_SPEAKER_SCRIPT, make_dialogue
from test_load import FORM, percentile, wait_for_model

from conftest import E2E_ENV, E2ESystem, started_system

CHATS = 3
QUESTION = "Name one colour."
REPLY_TOKENS = 8
CHAT_PAUSE_S = 1.5            # each chat client: a reply, then this pause (leaves the 2 CPUs to the other work)
REPLIES_PER_CHAT = 3          # then a new chat: a long history would make every prompt (and reply) slower
UPLOAD_PAUSE_S = 12.0         # the uploader: one recording accepted, then this pause (the transcriber keeps up)
POLL_EVERY_S = 0.25
RETRY_PAUSE_S = 0.5           # after a 503, a refused connection or a broken stream
REQUEST_TIMEOUT_S = 20.0      # one plain request (the gateway's gRPC deadline is 10 s): longer is a hang
UPLOAD_TIMEOUT_S = 30.0
STREAM_TIMEOUT = httpx.Timeout(20.0, read=40.0)   # keep-alive comments come every 15 s while a reply is silent
STREAM_WALL_S = 150.0         # a reply stream still open after this is a hang too
RECOVER_S = 120.0             # crash → restarted and healthy (Elasticsearch: ES_RECOVER_S)
ES_RECOVER_S = 240.0
FLOW_S = 90.0                 # healthy → every client kind succeeded again
SETTLE_S = 240.0              # every session ends completed/failed within this, every analysis job too
KINDS = ("chat", "upload", "poll")
# the client kinds that must have retried during a fault (so the crash did hit the load)
RETRIED = {"sessions": ("poll",), "chat": ("chat",), "llm-manager": ("chat",), "gateway": ("chat", "poll")}
SENTENCE = "We talked about the garden and the weather this week."
NUM_SPEAKERS = "1"            # no diarization gate: uploads are accepted while the transcriber restarts
ENV = {
    **E2E_ENV,
    "CHAT_MAX_REPLY_TOKENS": str(REPLY_TOKENS),
    "LLM_THREADS": "1",   # the replies take one of the 2 CPUs, not both: restarts (Elasticsearch's JVM) stay short
    "ANALYSIS_MAP_MAX_TOKENS": "16",
    "ANALYSIS_REDUCE_MAX_TOKENS": "16",
    "ANALYSIS_STRATEGY_MAX_TOKENS": "16",
    "ANALYSIS_HEARTBEAT_TIMEOUT_S": "4",   # a killed analysis worker is noticed after this
    "ANALYSIS_RECONCILE_INTERVAL_S": "1",
}
EMPTY_REPLY = "The model returned an empty response. Try again or reduce the context size."  # then `done`
TERMINAL_JOB = {"completed", "failed", "canceled"}


def error_body(response: httpx.Response) -> bool:
    """The contract's error body: a JSON object with string `error` and `message`."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("message"), str)


@dataclass
class Reply:
    """A reply that ended with `done`: it must be persisted after the user message `user_message_id`."""

    chat_id: int
    user_message_id: int
    text: str
    at: float   # time.monotonic() when `done` came


@dataclass
class Load:
    """The clients and what they saw. Times are time.monotonic(); lists only grow (a fault reads its slice)."""

    base_url: str
    headers: dict[str, str]
    speech: bytes
    stop: threading.Event = field(default_factory=threading.Event)
    nudge: threading.Event = field(default_factory=threading.Event)   # the uploader skips its pause once
    lock: threading.Lock = field(default_factory=threading.Lock)
    findings: list[tuple[float, str]] = field(default_factory=list)
    retries: list[tuple[float, str, str]] = field(default_factory=list)    # (time, kind, why)
    latencies: list[tuple[float, str, float]] = field(default_factory=list)  # (end time, kind, seconds)
    last_ok: dict[str, float] = field(default_factory=dict)                 # kind → time of its last success
    replies: list[Reply] = field(default_factory=list)
    uploads: list[tuple[int, str, float]] = field(default_factory=list)     # accepted (session id, job id, time)
    streaming: int = 0                                                       # reply streams past their first chunk
    threads: list[threading.Thread] = field(default_factory=list)

    # --- bookkeeping ------------------------------------------------------------------------------------------
    def finding(self, kind: str, what: str) -> None:
        with self.lock:
            self.findings.append((time.monotonic(), f"{kind}: {what}"))

    def retry(self, kind: str, why: str) -> None:
        with self.lock:
            self.retries.append((time.monotonic(), kind, why))

    def ok(self, kind: str) -> None:
        with self.lock:
            self.last_ok[kind] = time.monotonic()

    def latency(self, kind: str, started: float) -> None:
        with self.lock:
            self.latencies.append((time.monotonic(), kind, time.monotonic() - started))

    def client(self, timeout: float = REQUEST_TIMEOUT_S) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout)

    # --- one request, judged ----------------------------------------------------------------------------------
    def call(self, http: httpx.Client, kind: str, method: str, path: str, ok: tuple[int, ...] = (200,),
             **kwargs) -> httpx.Response | None:
        """One request: the response when its status is in `ok`; None when it is to be retried (503 with the error
        body, a refused or broken connection) or was a finding (timeout, any other status)."""
        started = time.monotonic()
        try:
            response = http.request(method, path, **kwargs)
        except httpx.TimeoutException as error:
            self.finding(kind, f"{method} {path}: no answer in time ({type(error).__name__}): a hang")
            return None
        except httpx.TransportError as error:
            self.retry(kind, type(error).__name__)
            return None
        finally:
            self.latency(kind, started)
        return self.judge(kind, f"{method} {path}", response, ok)

    def judge(self, kind: str, what: str, response: httpx.Response, ok: tuple[int, ...]) -> httpx.Response | None:
        if response.status_code in ok:
            self.ok(kind)
            return response
        if response.status_code == 503 and error_body(response):
            self.retry(kind, "503")
            return None
        self.finding(kind, f"{what}: {response.status_code} {response.text[:300]}")
        return None

    # --- the clients ------------------------------------------------------------------------------------------
    def send(self, http: httpx.Client, chat_id: int, text: str, kind: str = "chat") -> Reply | None:
        """Sends `text` and reads the SSE reply: the Reply when `done` came (recorded), None when to retry."""
        started, chunks, done, errors, counted = time.monotonic(), [], None, [], False
        try:
            with http.stream("POST", f"/chats/{chat_id}/messages", json={"text": text},
                             timeout=STREAM_TIMEOUT) as response:
                if response.status_code != 200:
                    response.read()
                    self.judge(kind, f"POST /chats/{chat_id}/messages", response, (200,))
                    return None
                user_message_id = int(response.headers["x-user-message-id"])
                carry = ""
                for piece in response.iter_text():
                    if time.monotonic() - started > STREAM_WALL_S:
                        self.finding(kind, f"chat {chat_id}: reply stream still open after {STREAM_WALL_S:.0f} s")
                        return None
                    carry += piece
                    *lines, carry = carry.split("\n")
                    for line in lines:
                        if not line.startswith("data:"):
                            continue
                        event = json.loads(line[5:])
                        if "chunk" in event:
                            chunks.append(event["chunk"])
                            if not counted:
                                counted = True
                                with self.lock:
                                    self.streaming += 1
                        if event.get("done"):
                            done = event
                        if "error" in event:
                            errors.append(event["error"])
        except httpx.TimeoutException as error:
            self.finding(kind, f"chat {chat_id}: reply stream silent too long ({type(error).__name__}): a hang")
            return None
        except httpx.TransportError as error:   # the gateway went away mid-stream
            self.retry(kind, type(error).__name__)
            return None
        finally:
            self.latency(f"{kind}-stream", started)
            if counted:
                with self.lock:
                    self.streaming -= 1
        if done is not None and (not errors or errors == [EMPTY_REPLY]):
            self.ok(kind)
            reply = Reply(chat_id, user_message_id, "".join(chunks).strip(), time.monotonic())
            if reply.text:
                with self.lock:
                    self.replies.append(reply)
            return reply
        if errors:                               # chat or llm-manager died mid-reply: the stream says so and ends
            self.retry(kind, "error event")
            return None
        self.finding(kind, f"chat {chat_id}: the stream ended with neither `done` nor an error event")
        return None

    def chat_client(self) -> None:
        with self.client() as http:
            chat_id, answered = None, 0
            while not self.stop.is_set():
                if chat_id is None or answered == REPLIES_PER_CHAT:
                    created = self.call(http, "chat", "POST", "/chats", ok=(201,))
                    chat_id, answered = (created.json()["id"], 0) if created is not None else (None, 0)
                    if chat_id is None:
                        self.stop.wait(RETRY_PAUSE_S)
                    continue
                reply = self.send(http, chat_id, QUESTION)
                answered += reply is not None
                self.stop.wait(CHAT_PAUSE_S if reply is not None else RETRY_PAUSE_S)

    def uploader(self) -> None:
        with self.client(UPLOAD_TIMEOUT_S) as http:
            while not self.stop.is_set():
                accepted = self.call(http, "upload", "POST", "/sessions/upload", ok=(202,),
                                     data={**FORM, "numSpeakers": NUM_SPEAKERS},
                                     files={"audioFile": ("faults.wav", self.speech, "audio/wav")})
                if accepted is not None:
                    body = accepted.json()
                    with self.lock:
                        self.uploads.append((body["sessionId"], body["jobId"], time.monotonic()))
                self.nudge.wait(UPLOAD_PAUSE_S if accepted is not None else RETRY_PAUSE_S)
                self.nudge.clear()

    def poller(self) -> None:
        with self.client() as http:
            while not self.stop.is_set():
                started = time.monotonic()
                self.call(http, "poll", "GET", "/sessions")
                self.stop.wait(max(0.0, POLL_EVERY_S - (time.monotonic() - started)))

    def start(self) -> None:
        targets: list[Callable[[], None]] = [self.chat_client] * CHATS + [self.uploader, self.poller]
        self.threads = [threading.Thread(target=t, name=f"load-{i}", daemon=True) for i, t in enumerate(targets)]
        for thread in self.threads:
            thread.start()

    def finish(self) -> list[str]:
        """Stops the clients; the names of those still running after STREAM_WALL_S (hung)."""
        self.stop.set()
        self.nudge.set()
        deadline = time.monotonic() + STREAM_WALL_S
        for thread in self.threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        return [thread.name for thread in self.threads if thread.is_alive()]


@dataclass
class FaultFigures:
    name: str
    to_healthy_s: float
    to_flowing_s: float
    retries: dict[str, int]
    max_request_s: float
    max_stream_s: float
    replies: int
    uploads: int

    def line(self) -> str:
        retries = ", ".join(f"{kind} {n}" for kind, n in sorted(self.retries.items())) or "none"
        return (f"  {self.name:15s} healthy after {self.to_healthy_s:5.1f} s, all clients through after "
                f"{self.to_flowing_s:5.1f} s; retries: {retries}; longest request {self.max_request_s:4.1f} s, "
                f"longest reply stream {self.max_stream_s:5.1f} s; {self.replies} replies, {self.uploads} uploads")


SUMMARY: list[FaultFigures] = []


@pytest.fixture(scope="module")
def fault_system(tmp_path_factory: pytest.TempPathFactory):
    with started_system(tmp_path_factory.mktemp("fault-system"), ENV, supervise=True) as running:
        yield running


@pytest.fixture(scope="module")
def http(fault_system: E2ESystem):
    """The test's own client (not part of the load): the checks after each fault."""
    with httpx.Client(base_url=fault_system.base_url, headers={"Authorization": f"Bearer {fault_system.token}"},
                      timeout=REQUEST_TIMEOUT_S) as client:
        yield client


@pytest.fixture(scope="module")
def load(fault_system: E2ESystem, http: httpx.Client, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("fault-audio") / "sentence.wav"
    make_dialogue(path, [("A", SENTENCE)])
    wait_for_model(http)
    running = Load(fault_system.base_url, {"Authorization": f"Bearer {fault_system.token}"}, path.read_bytes())
    running.start()
    eventually(lambda: all(kind in running.last_ok for kind in KINDS), FLOW_S, "every client kind succeeded once")
    try:
        yield running
    finally:
        hung = running.finish()
        if SUMMARY:
            print("\nfaults under load (3 chats, 1 uploader, 1 poller):")
            for figures in SUMMARY:
                print(figures.line())
        assert not hung, f"load clients still running after {STREAM_WALL_S:.0f} s: {hung}"


# --- checks -------------------------------------------------------------------------------------------------------

def eventually(check: Callable[[], bool], timeout_s: float, what: str | Callable[[], str],
               every_s: float = 0.2) -> float:
    """Polls `check` until true; the seconds it took. AssertionError naming `what` (or what it returns, then)
    after `timeout_s`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not reached after {timeout_s:.0f} s: {what() if callable(what) else what}")
        time.sleep(every_s)
    return time.monotonic() - started


def get_json(http: httpx.Client, path: str, **params):
    """The JSON of a GET (see request_ok)."""
    return request_ok(http, "GET", path, params=params or None).json()


def request_ok(http: httpx.Client, method: str, path: str, ok: int = 200, **kwargs) -> httpx.Response:
    """A request answered `ok`, retrying a 503 or a broken connection for up to FLOW_S, as a client does: the
    checks run right after a recovery, when a channel to the restarted service may still wait out its reconnect
    backoff. AssertionError for any other status."""
    deadline = time.monotonic() + FLOW_S
    while True:
        try:
            response = http.request(method, path, **kwargs)
            if response.status_code != 503:
                assert response.status_code == ok, f"{method} {path}: {response.status_code} {response.text[:300]}"
                return response
        except httpx.TransportError as error:
            if isinstance(error, httpx.TimeoutException) or time.monotonic() > deadline:
                raise
        assert time.monotonic() < deadline, f"{method} {path} still refused after {FLOW_S:.0f} s"
        time.sleep(RETRY_PAUSE_S)


def assert_replies_persisted(http: httpx.Client, replies: list[Reply]) -> None:
    """Each reply: its user message is in the chat, and the next message is the AI reply with the streamed text."""
    by_chat: dict[int, list[Reply]] = {}
    for reply in replies:
        by_chat.setdefault(reply.chat_id, []).append(reply)
    for chat_id, expected in by_chat.items():
        messages = get_json(http, f"/chats/{chat_id}")["messages"]
        position = {m["id"]: i for i, m in enumerate(messages)}
        for reply in expected:
            at = position.get(reply.user_message_id)
            assert at is not None, f"chat {chat_id}: user message {reply.user_message_id} (answered) was lost"
            after = messages[at + 1] if at + 1 < len(messages) else None
            assert after is not None and after["sender"] == "ai" and after["text"].strip() == reply.text, (
                f"chat {chat_id}: the reply streamed after message {reply.user_message_id} is not what was stored: "
                f"streamed {reply.text!r}, stored {after}")


SETTLED: set[int] = set()   # load sessions already seen completed or failed with one set of paragraphs


def assert_sessions_settle(http: httpx.Client, recheck: bool = False, max_paragraphs: int = 3) -> int:
    """Every load session listed now ends completed or failed within SETTLE_S, with one set of paragraphs (ids
    0..n-1, at most `max_paragraphs` for the one-sentence recording); those in SETTLED only when `recheck`.
    Returns how many were checked."""
    ids = [s["id"] for s in get_json(http, "/sessions") if s["sessionName"] == FORM["sessionName"]]
    pending = {i for i in ids if recheck or i not in SETTLED}

    def settled() -> bool:
        for session_id in list(pending):
            session = get_json(http, f"/sessions/{session_id}")
            if session["status"] in ("completed", "failed"):
                check_paragraphs(http, session, max_paragraphs)
                pending.discard(session_id)
                SETTLED.add(session_id)
        return not pending

    eventually(settled, SETTLE_S, lambda: f"sessions still not completed or failed: {sorted(pending)}", every_s=1.0)
    return len(ids)


def check_paragraphs(http: httpx.Client, session: dict, max_paragraphs: int) -> list[dict]:
    transcript = get_json(http, f"/sessions/{session['id']}/transcript")
    if session["status"] == "failed":
        assert transcript == [] and session["errorMessage"], session
        return transcript
    ids = [p["id"] for p in transcript]
    assert ids == list(range(len(ids))), f"session {session['id']}: paragraph ids {ids}"
    assert 1 <= len(ids) <= max_paragraphs, f"session {session['id']}: {len(ids)} paragraphs (one set?): {transcript}"
    return transcript


def since(items: list, mark: float, at: Callable = lambda item: item[0]) -> list:
    return [item for item in list(items) if at(item) >= mark]


def crash_and_recover(system: E2ESystem, load: Load, name: str, recover_s: float = RECOVER_S,
                      while_down: Callable[[], None] | None = None) -> tuple[float, float, float]:
    """kill -9 `name` (the supervisor restarts it); `while_down` runs right after the kill. Waits until a new
    process is healthy, then until every client kind succeeded after that. (crash time, to healthy s, to flowing s)."""
    old_pid = system.system.running[name].popen.pid
    crashed_at = time.monotonic()
    system.crash(name)
    if while_down is not None:
        while_down()
    eventually(lambda: system.system.running[name].popen.pid != old_pid and system.system.healthy(name), recover_s,
               f"{name} restarted and healthy", every_s=0.1)
    healthy_at = time.monotonic()
    load.nudge.set()   # an upload right away, not after the uploader's pause
    try:
        eventually(lambda: all(load.last_ok.get(kind, 0) > healthy_at for kind in KINDS), FLOW_S,
                   f"every client kind succeeded again after {name} came back")
    except AssertionError as error:
        now = time.monotonic()
        last = {kind: f"{now - load.last_ok[kind]:.0f} s ago" for kind in KINDS if kind in load.last_ok}
        retries = [f"{kind} {why}" for _, kind, why in since(load.retries, healthy_at)][-10:]
        findings = [what for _, what in since(load.findings, crashed_at)][-10:]
        raise AssertionError(f"{error}; last success: {last}; retries since: {retries}; findings: {findings}; "
                             f"{load.streaming} replies mid-stream") from None
    return crashed_at, healthy_at - crashed_at, time.monotonic() - crashed_at


def finish_fault(http: httpx.Client, load: Load, name: str, mark: float, to_healthy_s: float,
                 to_flowing_s: float) -> FaultFigures:
    """The checks every fault shares, then its figures (printed, and kept for the summary)."""
    findings = since(load.findings, mark)
    assert not findings, f"{name}: " + "\n".join(what for _, what in findings[:20])
    assert_replies_persisted(http, list(load.replies))
    assert_sessions_settle(http)
    retries: dict[str, int] = {}
    for _, kind, _why in since(load.retries, mark):
        retries[kind] = retries.get(kind, 0) + 1
    latencies = since(load.latencies, mark)
    figures = FaultFigures(
        name, to_healthy_s, to_flowing_s, retries,
        max((s for _, kind, s in latencies if not kind.endswith("-stream")), default=0.0),
        max((s for _, kind, s in latencies if kind.endswith("-stream")), default=0.0),
        len([r for r in load.replies if r.at >= mark]), len([u for u in since(load.uploads, mark, lambda u: u[2])]))
    SUMMARY.append(figures)
    print(figures.line(), flush=True)
    return figures


def wait_streaming(load: Load, timeout_s: float = 15.0) -> None:
    """Until a reply is mid-stream (so the crash cuts one), or `timeout_s` (then the crash hits between replies)."""
    deadline = time.monotonic() + timeout_s
    while load.streaming == 0 and time.monotonic() < deadline:
        time.sleep(0.02)


def upload_probe(http: httpx.Client, audio: bytes) -> dict:
    """Uploads `audio` (one speaker) as the test's own session, outside the load: the 202 body."""
    return request_ok(http, "POST", "/sessions/upload", 202, timeout=UPLOAD_TIMEOUT_S,
                      data={**FORM, "sessionName": "Fault probe", "numSpeakers": "1"},
                      files={"audioFile": ("probe.wav", audio, "audio/wav")}).json()


def completed_sessions(http: httpx.Client, count: int) -> list[int]:
    done = [s["id"] for s in get_json(http, "/sessions")
            if s["status"] == "completed" and s["sessionName"] == FORM["sessionName"]]
    assert len(done) >= count, f"only {len(done)} completed sessions to analyse"
    return done[:count]


def job_status(http: httpx.Client, job_id: int) -> str:
    return get_json(http, f"/analysis-jobs/{job_id}")["status"]


# --- the faults ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sessions", "chat", "llm-manager", "gateway"])
def test_service_killed_under_load_clients_retry_and_nothing_is_lost(fault_system, load, http, name) -> None:
    mark = time.monotonic()
    wait_streaming(load)
    _, to_healthy, to_flowing = crash_and_recover(fault_system, load, name)
    retried = {kind for _, kind, _ in since(load.retries, mark)}
    assert set(RETRIED[name]) <= retried, f"the crash of {name} went unnoticed by {set(RETRIED[name]) - retried}"
    finish_fault(http, load, name, mark, to_healthy, to_flowing)


def test_transcriber_killed_mid_job_the_session_ends_completed_or_failed(fault_system, load, http, tmp_path) -> None:
    recording = tmp_path / "long.wav"
    # ~4 min of audio: the ASR decodes the VAD's speech in batches of up to 4 x 30 s and reports progress once per
    # batch, so 30 s (one batch) went from 2 % straight to done before a 0.1 s poll saw it past 3 %.
    script = TWO_SPEAKER_SCRIPT * 8
    make_dialogue(recording, script)
    mark = time.monotonic()
    body = upload_probe(http, recording.read_bytes())
    status: dict = {}

    def transcribing() -> bool:
        status.update(get_json(http, f"/transcription/status/{body['jobId']}"))
        return status["status"] == "transcribing" and (status["progress"] or 0) > 3

    eventually(transcribing, SETTLE_S, lambda: f"job {body['jobId']} transcribing (last: {status})", every_s=0.1)
    _, to_healthy, to_flowing = crash_and_recover(fault_system, load, "transcriber")
    eventually(lambda: get_json(http, f"/sessions/{body['sessionId']}")["status"] in ("completed", "failed"),
               SETTLE_S, f"session {body['sessionId']} completed or failed")
    session = get_json(http, f"/sessions/{body['sessionId']}")
    status = get_json(http, f"/transcription/status/{body['jobId']}")
    assert status["status"] == session["status"], (session, status)
    check_paragraphs(http, session, len(script) + 3)
    if session["status"] == "completed":
        assert status["attempt"] == 2, status   # the killed attempt was retried once, and that one finished
    finish_fault(http, load, "transcriber", mark, to_healthy, to_flowing)


def running_job(http: httpx.Client, prompt: str) -> int:
    """Creates an analysis job over two of the load's transcribed sessions; returns its id once it runs."""
    job_id = request_ok(http, "POST", "/analysis-jobs", 202,
                        json={"sessionIds": completed_sessions(http, 2), "prompt": prompt}).json()["jobId"]
    eventually(lambda: job_status(http, job_id) in ("mapping", "reducing"), SETTLE_S, f"job {job_id} running",
               every_s=0.05)
    return job_id


def test_analysis_worker_then_analysis_killed_mid_job_the_job_completes_and_its_stream_ends(
        fault_system, load, http) -> None:
    mark = time.monotonic()
    job_id = running_job(http, "What did the client talk about?")
    _, to_healthy, to_flowing = crash_and_recover(fault_system, load, "analysis-worker")
    # resumed by the reconciler (attempt 2) once the killed worker's heartbeat is older than its timeout
    eventually(lambda: job_status(http, job_id) in TERMINAL_JOB, SETTLE_S, f"analysis job {job_id} ended")
    job = get_json(http, f"/analysis-jobs/{job_id}")
    assert job["status"] == "completed", job
    assert job["final_result"] and all(s["status"] == "completed" for s in job["summaries"]), job
    finish_fault(http, load, "analysis-worker", mark, to_healthy, to_flowing)

    # the gRPC service, while a client watches a job's SSE stream: the stream ends at once (not a hang), the job
    # completes (the worker does not need the service), and a client reconnecting afterwards gets the rest
    mark = time.monotonic()
    job_id = running_job(http, "Which topics came up more than once?")
    seen: dict = {"events": [], "ended": None, "error": None, "last_id": "0-0"}

    def watch() -> None:
        try:
            with httpx.Client(base_url=load.base_url, headers=load.headers) as client, client.stream(
                    "GET", f"/analysis-jobs/{job_id}/stream", timeout=STREAM_TIMEOUT) as response:
                for line in response.iter_lines():
                    if line.startswith("id:"):
                        seen["last_id"] = line[3:].strip()
                    if line.startswith("data:"):
                        seen["events"].append(json.loads(line[5:]))
        except httpx.TransportError as error:
            seen["error"] = error
        seen["ended"] = time.monotonic()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    eventually(lambda: bool(seen["events"]), FLOW_S, f"job {job_id}: its stream open")
    crashed_at, to_healthy, to_flowing = crash_and_recover(fault_system, load, "analysis")
    watcher.join(timeout=STREAM_WALL_S)
    assert not watcher.is_alive(), "the analysis stream was still open after the analysis service was killed"
    assert not isinstance(seen["error"], httpx.TimeoutException), seen["error"]
    cut = seen["ended"] >= crashed_at   # else the job had already ended and its stream closed normally
    if cut:
        assert seen["ended"] - crashed_at < REQUEST_TIMEOUT_S, "the stream took too long to notice the crash"
    print(f"  the analysis stream ended {seen['ended'] - crashed_at:.1f} s after the crash" if cut
          else "  the analysis stream had ended (job done) before the crash")
    assert seen["error"] is not None or seen["events"][-1].get("status") in TERMINAL_JOB, seen["events"][-3:]
    eventually(lambda: job_status(http, job_id) in TERMINAL_JOB, SETTLE_S, f"analysis job {job_id} ended")
    assert job_status(http, job_id) == "completed", get_json(http, f"/analysis-jobs/{job_id}")
    with http.stream("GET", f"/analysis-jobs/{job_id}/stream", headers={"Last-Event-ID": seen["last_id"]},
                     timeout=STREAM_TIMEOUT) as response:
        assert response.status_code == 200
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")]
    assert events and events[-1].get("status") == "completed", events[-3:]
    finish_fault(http, load, "analysis", mark, to_healthy, to_flowing)


def silent_wav(seconds: float) -> bytes:
    """A 48 kHz stereo 16-bit WAV of silence: 192 kB a second to store and export, next to nothing to transcribe
    (the voice-activity filter drops it all)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(48000)
        writer.writeframes(bytes(int(48000 * seconds) * 4))
    return out.getvalue()


def test_ops_killed_during_an_export_the_download_is_cut_and_the_next_export_is_whole(fault_system, load, http) -> None:
    # an export larger than what the sockets and gRPC windows between ops and the client buffer (a few MB), so
    # that the kill lands while ops is still streaming it
    request_ok(http, "POST", "/sessions/upload", 202, timeout=UPLOAD_TIMEOUT_S,
               data={**FORM, "sessionName": "Fault export", "numSpeakers": "1"},
               files={"audioFile": ("silence.wav", silent_wav(80), "audio/wav")})
    mark = time.monotonic()
    seen: dict = {"status": None, "ended": None, "error": None, "data": b""}

    def slow_export() -> None:
        try:
            with httpx.Client(base_url=load.base_url, headers=load.headers) as client, client.stream(
                    "GET", "/admin/export-data", timeout=httpx.Timeout(20.0, read=40.0)) as response:
                seen["status"] = response.status_code
                for piece in response.iter_bytes(64 * 1024):
                    seen["data"] += piece
                    time.sleep(0.05)
        except httpx.TransportError as error:
            seen["error"] = error
        seen["ended"] = time.monotonic()

    exporter = threading.Thread(target=slow_export, daemon=True)
    exporter.start()
    eventually(lambda: len(seen["data"]) > 0 or seen["ended"] is not None, FLOW_S, "the export started")

    def refused_while_down() -> None:
        response = http.get("/admin/export-data")
        assert response.status_code == 503 and error_body(response), (response.status_code, response.text[:300])

    _, to_healthy, to_flowing = crash_and_recover(fault_system, load, "ops", while_down=refused_while_down)
    exporter.join(timeout=STREAM_WALL_S)
    assert not exporter.is_alive(), "the export download was still open after ops was killed"
    assert seen["status"] == 200 and not isinstance(seen["error"], httpx.TimeoutException), seen
    names = archive_names(seen["data"])
    print(f"  the export in flight at the crash was cut after {len(seen['data'])} bytes ({len(names)} members, "
          f"{type(seen['error']).__name__})")
    # cut short as a broken download, never as a clean end: the archive without its manifest (import refuses it)
    assert seen["error"] is not None and "manifest.json" not in names, (len(seen["data"]), names[-3:])
    assert "manifest.json" in archive_names(request_ok(http, "GET", "/admin/export-data", timeout=120).content)
    finish_fault(http, load, "ops", mark, to_healthy, to_flowing)


def archive_names(data: bytes) -> list[str]:
    """The member names a (possibly cut) TAR stream holds, as far as it can be read."""
    names = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as archive:
            for member in archive:
                names.append(member.name)
    except (tarfile.TarError, OSError, EOFError):
        pass
    return names


def test_redis_killed_under_load_uploads_are_refused_then_none_is_lost(fault_system, load, http) -> None:
    mark = time.monotonic()
    refused: list[int] = []

    def upload_while_down() -> None:  # Redis is back ~1 s after the kill: a 202 is as right as a 503
        accepted = load.call(http, "probe", "POST", "/sessions/upload", ok=(202,),
                             data={**FORM, "numSpeakers": NUM_SPEAKERS},
                             files={"audioFile": ("redis.wav", load.speech, "audio/wav")})
        refused.append(503 if accepted is None else 202)

    _, to_healthy, to_flowing = crash_and_recover(fault_system, load, "redis", while_down=upload_while_down)
    print(f"  upload right after Redis was killed: {refused[0]}")
    finish_fault(http, load, "redis", mark, to_healthy, to_flowing)


def test_elasticsearch_killed_a_message_sent_meanwhile_is_found_once_it_is_back(fault_system, load, http) -> None:
    mark = time.monotonic()
    word = f"zanzibar{secrets.randbelow(10**6)}"
    sent: dict = {}

    def while_down() -> None:
        chat_id = request_ok(http, "POST", "/chats", 201).json()["id"]
        reply = load.send(http, chat_id, f"Say hello to {word}.", kind="probe")
        assert reply is not None, load.findings[-3:]
        sent["reply"] = reply
        down = http.get("/search", params={"q": word})
        assert down.status_code == 503 and error_body(down), (down.status_code, down.text[:300])

    _, to_healthy, to_flowing = crash_and_recover(fault_system, load, "elasticsearch", ES_RECOVER_S, while_down)
    eventually(lambda: any(h["type"] == "chat" and h["chatId"] == sent["reply"].chat_id
                           for h in get_json(http, "/search", q=word, searchType="chat")["results"]),
               FLOW_S, f"the message with {word!r} found after Elasticsearch came back", every_s=0.5)
    finish_fault(http, load, "elasticsearch", mark, to_healthy, to_flowing)


def test_after_every_fault_nothing_was_lost_or_stuck(load, http) -> None:
    hung = load.finish()
    assert not hung, f"load clients still running after {STREAM_WALL_S:.0f} s: {hung}"
    assert not load.findings, "\n".join(what for _, what in load.findings[:20])
    assert_replies_persisted(http, load.replies)
    checked = assert_sessions_settle(http, recheck=True)
    sessions = get_json(http, "/sessions")
    assert {sid for sid, _, _ in load.uploads} <= {s["id"] for s in sessions}
    failed = [s["id"] for s in sessions if s["status"] == "failed"]
    jobs = get_json(http, "/analysis-jobs")
    assert all(j["status"] in TERMINAL_JOB for j in jobs), jobs
    stream_s = [s for _, kind, s in load.latencies if kind == "chat-stream"]
    print(f"\nafter {len(SUMMARY)} faults: {len(load.replies)} replies persisted, {checked} sessions settled "
          f"({len(failed)} failed: {failed}), "
          f"{len(jobs)} analysis jobs ended, {len(load.retries)} retries; reply stream p50 "
          f"{percentile(stream_s, 0.5):.1f} s, p99 {percentile(stream_s, 0.99):.1f} s")
