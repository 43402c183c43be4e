"""End-to-end smoke of the compose stack, driven only through Traefik (the one published port), as a client.

    .venv/bin/python deploy/ci/smoke.py --base-url http://127.0.0.1:PORT/api --token TOKEN

1. waits until /api/health answers 200 through Traefik (prints the time to ready);
2. uploads a two-voice espeak-ng recording (tests/support/dialogue.py) → waits for the transcript → checks it has
   the words and two speaker labels;
3. opens a chat on that session and streams a reply over SSE (several `chunk` events, then `done`);
4. searches for a word of the transcript, when search answers (501/503 = not there yet: said, not failed);
5. checks that auth is enforced at the edge (401 without the token).
Exit 0 when all pass; the first failure is printed with what was seen. Needs httpx (the .venv has it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
from dialogue import TWO_SPEAKER_SCRIPT, make_dialogue, words_match

FORM = {"clientName": "Smoke Test", "sessionName": "Compose smoke", "date": "2026-11-20",
        "sessionType": "Individual", "therapy": "CBT", "numSpeakers": "2"}


def say(message: str) -> None:
    print(f"[smoke] {message}", flush=True)


def wait_ready(base_url: str, timeout_s: float) -> float:
    """Seconds until GET /health answers 200 through the edge; AssertionError after timeout_s."""
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout_s:
        try:
            reply = httpx.get(f"{base_url}/health", timeout=5)
            if reply.status_code == 200:
                return time.monotonic() - start
            last = f"{reply.status_code} {reply.text[:200]}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(2)
    raise AssertionError(f"not ready after {timeout_s:.0f} s: {last}")


def upload_and_transcribe(client: httpx.Client, wav: Path, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while True:   # 503 while the transcriber is still loading its models (the diarization gate)
        with wav.open("rb") as file:
            reply = client.post("/sessions/upload", data=FORM, files={"audioFile": (wav.name, file, "audio/wav")})
        if reply.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert reply.status_code == 202, f"upload: {reply.status_code} {reply.text}"
    session_id = reply.json()["sessionId"]
    while time.monotonic() < deadline:
        session = client.get(f"/sessions/{session_id}").json()
        if session["status"] in ("completed", "failed"):
            assert session["status"] == "completed", session
            return int(session_id)
        time.sleep(2)
    raise AssertionError(f"session {session_id} not transcribed after {timeout_s:.0f} s")


def check_transcript(client: httpx.Client, session_id: int) -> str:
    transcript = client.get(f"/sessions/{session_id}/transcript").json()
    text = " ".join(p["text"] for p in transcript)
    score = words_match(" ".join(t for _, t in TWO_SPEAKER_SCRIPT), text)
    speakers = {p["speaker"] for p in transcript}
    assert score >= 0.8, f"transcript words match {score:.2f}: {text[:300]}"
    assert len(speakers) == 2, f"speakers {speakers}"
    say(f"transcript: {len(transcript)} paragraphs, words match {score:.2f}, speakers {sorted(speakers)}")
    return text


def chat_reply(client: httpx.Client, session_id: int) -> None:
    chat = client.post(f"/sessions/{session_id}/chats")
    assert chat.status_code == 201, chat.text
    arrivals, carry = [], ""
    path = f"/sessions/{session_id}/chats/{chat.json()['id']}/messages"
    with client.stream("POST", path, json={"text": "What did the client say about sleep?"}) as reply:
        assert reply.status_code == 200, reply.read()
        for text in reply.iter_text():
            carry += text
            *lines, carry = carry.split("\n")
            arrivals += [(time.monotonic(), json.loads(line[5:])) for line in lines if line.startswith("data:")]
    chunks = [at for at, event in arrivals if "chunk" in event]
    assert arrivals and arrivals[-1][1].get("done") is True, arrivals[-3:]
    assert len(chunks) >= 3 and chunks[-1] - chunks[0] > 0.05, "the reply did not stream"
    say(f"chat: {len(chunks)} chunks over {chunks[-1] - chunks[0]:.2f} s, then done")


def search(client: httpx.Client, word: str, timeout_s: float = 60) -> None:
    """The transcript's `word` is found by /api/search (the index catches up through the outbox)."""
    reply = client.get("/search", params={"q": word})
    if reply.status_code in (501, 503):
        say(f"search: {reply.status_code} (not built or not configured yet): skipped, not failed")
        return
    deadline = time.monotonic() + timeout_s
    while reply.status_code == 200 and word.lower() not in reply.text.lower() and time.monotonic() < deadline:
        time.sleep(2)
        reply = client.get("/search", params={"q": word})
    assert reply.status_code == 200 and word.lower() in reply.text.lower(), \
        f"search for {word!r}: {reply.status_code} {reply.text[:300]}"
    say(f"search: found {word!r}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--ready-timeout", type=float, default=600)
    parser.add_argument("--transcribe-timeout", type=float, default=600)
    args = parser.parse_args()
    try:
        say(f"ready through the edge in {wait_ready(args.base_url, args.ready_timeout):.0f} s")
        assert httpx.get(f"{args.base_url}/sessions", timeout=10).status_code == 401, "no auth at the edge"
        with tempfile.TemporaryDirectory() as folder, httpx.Client(
                base_url=args.base_url, headers={"Authorization": f"Bearer {args.token}"}, timeout=120) as client:
            wav = Path(folder) / "two-voices.wav"
            make_dialogue(wav, TWO_SPEAKER_SCRIPT)
            started = time.monotonic()
            session_id = upload_and_transcribe(client, wav, args.transcribe_timeout)
            say(f"uploaded and transcribed in {time.monotonic() - started:.0f} s")
            check_transcript(client, session_id)
            chat_reply(client, session_id)
            search(client, "breathing")
    except AssertionError as error:
        say(f"FAILED: {error}")
        return 1
    say("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
