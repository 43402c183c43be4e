"""Load on the whole running system (issue 13, "Load"), sized to a few minutes: for 60 s, 20 concurrent SSE chats
(each a standalone chat sending one short question after another), 3 concurrent uploads (one short recording
after another) and a client polling `GET /api/sessions` every 200 ms.

Passes when: no request errs (the only refusal allowed is the chat service's documented 503, with the error body,
when CHAT_MAX_CONCURRENT_REPLIES replies are already streaming — fewer than 20 by default, so some chats are
refused; the client retries after Retry-After or a pause, as the contract says, and the retry must get through
within RETRY_FOR_S); every stream ends with its
`done` event; every message sent and every reply streamed is persisted (the chat's messages, read back); every
upload is listed; the gateway, sessions and chat services' RSS grows by at most 256 MB (bounded memory, not a
model load: llm-manager and the transcriber load models on first use and are only reported).
Figures are printed (`pytest -s` shows them): polling latency p50/p99, time to first token p50/p99, replies,
503 retries, uploads, RSS of every service before/after.
Real everything: the packaged SmolLM2 on llama.cpp, Whisper on CPU for the uploads. The test runs its own system
(redis, sessions, transcriber, chat, llm-manager, gateway — what the load touches; authentication on), so that
replies can be capped at REPLY_TOKENS (CHAT_MAX_REPLY_TOKENS): the session's shared system leaves replies uncapped,
and one llama.cpp slot serves all 20 chats in turn.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from conftest import E2ESystem, started_system

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import therascript_local  # noqa: E402

DURATION_S = 60.0
CHATS = 20
UPLOADS = 3
POLL_EVERY_S = 0.2
QUESTION = "Name three colours, one per line."
REPLY_TOKENS = 16
STREAM_TIMEOUT_S = 240.0      # one reply, queued behind up to 19 others on one llama.cpp slot, on a busy machine
RETRY_PAUSE_S = 1.0
RETRY_FOR_S = 240.0           # a refused (503) message is retried this long before it counts as an error
DRAIN_S = 300.0               # after the 60 s, the replies in flight must all end within this
UPLOAD_PAUSE_S = 5.0          # each uploader: one recording, then this pause (the jobs queue up for the transcriber)
SERVICES = ("redis", "sessions", "transcriber", "chat", "llm-manager", "gateway")
RSS_GROWTH_LIMIT_MB = 256
BOUNDED = ("gateway", "sessions", "chat")
FORM = {"clientName": "Load", "sessionName": "Load", "date": "2026-02-01", "sessionType": "Individual",
        "therapy": "CBT", "numSpeakers": "1"}


@dataclass
class Figures:
    errors: list[str] = field(default_factory=list)
    poll_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    retries_503: int = 0
    replies: int = 0
    uploads: list[int] = field(default_factory=list)           # session ids
    sent: dict[int, int] = field(default_factory=dict)         # chat id → messages sent and answered with done
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return float("nan")


def rss_of(system: therascript_local.System) -> dict[str, float]:
    return {name: rss_mb(running.popen.pid) for name, running in system.running.items()}


@pytest.fixture(scope="module")
def load_system(tmp_path_factory: pytest.TempPathFactory):
    specs = tuple(spec for spec in therascript_local.PROCESSES if spec.name in SERVICES)
    with started_system(tmp_path_factory.mktemp("load-system"), {"CHAT_MAX_REPLY_TOKENS": str(REPLY_TOKENS)},
                        specs=specs, timeout_s=240) as running:
        yield running


def short_wav(path: Path, seconds: float = 3.0) -> bytes:
    """A valid 16 kHz mono WAV of a quiet tone (so the content check sees audio)."""
    import math
    frames = bytearray()
    for i in range(int(16000 * seconds)):
        frames += int(800 * math.sin(2 * math.pi * 220 * i / 16000)).to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(bytes(frames))
    return path.read_bytes()


def wait_for_model(client: httpx.Client, timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/llm/status").json().get("loaded"):
            return
        time.sleep(1.0)
    raise AssertionError("the packaged model did not load")


def stream_reply(http: httpx.Client, chat_id: int, figures: Figures) -> bool:
    """Sends QUESTION to the chat and reads its SSE stream; retries a 503 (limit reached). True when `done` came."""
    import json
    give_up = time.monotonic() + RETRY_FOR_S
    while True:
        started = time.perf_counter()
        with http.stream("POST", f"/chats/{chat_id}/messages", json={"text": QUESTION},
                         timeout=httpx.Timeout(30, read=STREAM_TIMEOUT_S)) as response:
            if response.status_code == 503 and time.monotonic() < give_up:
                response.read()
                body = response.json()
                if set(body) < {"error", "message"}:
                    figures.error(f"chat {chat_id}: 503 without the error body: {body}")
                    return False
                with figures.lock:
                    figures.retries_503 += 1
                time.sleep(float(response.headers.get("retry-after", RETRY_PAUSE_S)))
                continue
            if response.status_code != 200:
                response.read()
                figures.error(f"chat {chat_id}: {response.status_code} {response.text[:200]}")
                return False
            first, done, carry = None, None, ""
            for text in response.iter_text():
                carry += text
                *lines, carry = carry.split("\n")
                for line in lines:
                    if not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:])
                    if "chunk" in event and first is None:
                        first = time.perf_counter()
                    if event.get("done"):
                        done = event
                    if "error" in event:
                        figures.error(f"chat {chat_id}: error event {event}")
            if done is None:
                figures.error(f"chat {chat_id}: the stream ended without its done event")
                return False
            with figures.lock:
                figures.replies += 1
                if first is not None:
                    figures.ttft_ms.append(1000 * (first - started))
            return True


def chat_worker(base_url: str, headers: dict, stop_at: float, figures: Figures) -> None:
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        try:
            created = http.post("/chats")
            if created.status_code != 201:
                figures.error(f"POST /chats: {created.status_code} {created.text[:200]}")
                return
            chat_id = created.json()["id"]
            figures.sent[chat_id] = 0
            while time.monotonic() < stop_at:
                if not stream_reply(http, chat_id, figures):
                    return
                figures.sent[chat_id] += 1
        except httpx.HTTPError as error:
            figures.error(f"chat worker: {type(error).__name__}: {error}")


def upload_worker(base_url: str, headers: dict, audio: bytes, stop_at: float, figures: Figures) -> None:
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
        try:
            while time.monotonic() < stop_at:
                response = http.post("/sessions/upload", data=FORM, files={"audioFile": ("load.wav", audio,
                                                                                        "audio/wav")})
                if response.status_code != 202:
                    figures.error(f"upload: {response.status_code} {response.text[:200]}")
                    return
                with figures.lock:
                    figures.uploads.append(response.json()["sessionId"])
                time.sleep(UPLOAD_PAUSE_S)
        except httpx.HTTPError as error:
            figures.error(f"upload worker: {type(error).__name__}: {error}")


def poller(base_url: str, headers: dict, stop_at: float, figures: Figures) -> None:
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                response = http.get("/sessions")
            except httpx.HTTPError as error:
                figures.error(f"poll: {type(error).__name__}: {error}")
                return
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                figures.error(f"poll: {response.status_code} {response.text[:200]}")
            figures.poll_ms.append(1000 * elapsed)
            if len(figures.poll_ms) % 75 == 0:  # about every 15 s: progress, visible with -s even if it hangs later
                print(f"  … {figures.replies} replies, {figures.retries_503} retried 503s, {len(figures.uploads)} "
                      f"uploads, {len(figures.errors)} errors", flush=True)
            time.sleep(max(0.0, POLL_EVERY_S - elapsed))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


@pytest.mark.timeout(1200)
def test_chats_uploads_and_polling_under_load(load_system: E2ESystem, tmp_path: Path) -> None:
    system = load_system
    headers = {"Authorization": f"Bearer {system.token}"}
    client = httpx.Client(base_url=system.base_url, headers=headers, timeout=30)
    wait_for_model(client)
    audio = short_wav(tmp_path / "load.wav")
    figures = Figures()
    rss_before = rss_of(system.system)
    stop_at = time.monotonic() + DURATION_S
    threads = [threading.Thread(target=chat_worker, args=(system.base_url, headers, stop_at, figures))
               for _ in range(CHATS)]
    threads += [threading.Thread(target=upload_worker, args=(system.base_url, headers, audio, stop_at, figures))
                for _ in range(UPLOADS)]
    threads.append(threading.Thread(target=poller, args=(system.base_url, headers, stop_at, figures)))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:  # the last replies may still be streaming at 60 s
        thread.join(timeout=max(0.1, started + DURATION_S + DRAIN_S - time.monotonic()))
    hung = [thread.name for thread in threads if thread.is_alive()]
    wall_s = time.monotonic() - started
    rss_after = rss_of(system.system)

    # persisted: every message sent and every reply, read back
    for chat_id, answered in figures.sent.items():
        messages = client.get(f"/chats/{chat_id}").json()["messages"]
        users = [m for m in messages if m["sender"] == "user"]
        replies = [m for m in messages if m["sender"] == "ai" and m["text"].strip()]
        if len(users) < answered or len(replies) < answered:
            figures.error(f"chat {chat_id}: {answered} replies streamed, persisted {len(users)} user messages "
                          f"and {len(replies)} replies")
    listed = {s["id"] for s in client.get("/sessions").json()}
    missing = [sid for sid in figures.uploads if sid not in listed]

    print(f"\nload: {CHATS} chats + {UPLOADS} uploaders + 1 poller for {DURATION_S:.0f} s (all done after "
          f"{wall_s:.0f} s)")
    print(f"  polling GET /api/sessions: {len(figures.poll_ms)} requests, p50 "
          f"{percentile(figures.poll_ms, 0.5):.1f} ms, p99 {percentile(figures.poll_ms, 0.99):.1f} ms")
    print(f"  chat replies: {figures.replies} streamed to done, time to first token p50 "
          f"{percentile(figures.ttft_ms, 0.5):.0f} ms, p99 {percentile(figures.ttft_ms, 0.99):.0f} ms; "
          f"503 (reply limit) retried {figures.retries_503} times")
    print(f"  uploads: {len(figures.uploads)} accepted; replies capped at {REPLY_TOKENS} tokens")
    for name in sorted(rss_before):
        print(f"  RSS {name:12s} before {rss_before[name]:7.1f} MB, after {rss_after.get(name, float('nan')):7.1f} MB")

    try:
        assert not hung, f"threads still running after the time limit: {hung}"
        assert not figures.errors, "\n".join(figures.errors[:30])
        assert not missing, f"uploaded sessions not listed: {missing}"
        assert len(figures.sent) == CHATS and all(n >= 1 for n in figures.sent.values()), figures.sent
        assert len(figures.uploads) >= UPLOADS
        assert len(figures.poll_ms) >= DURATION_S / POLL_EVERY_S / 3, "the poller was starved"
        for name in BOUNDED:
            growth = rss_after[name] - rss_before[name]
            assert growth <= RSS_GROWTH_LIMIT_MB, f"{name} grew by {growth:.0f} MB under load"
        assert statistics.median(figures.poll_ms) < 5000, "polling stalled behind the load"
    finally:
        client.post("/jobs/reset-transcription")  # the uploads' jobs must not weigh on the tests after this one
        client.close()
