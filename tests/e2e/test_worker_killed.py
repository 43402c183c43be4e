"""kill -9 the transcription worker mid-job: the session must end `completed` (after a retry) or
`failed`, never stuck in `transcribing`, with exactly one set of paragraphs."""

from __future__ import annotations

import time

from dialogue import TWO_SPEAKER_SCRIPT, make_dialogue
from test_sessions_flow import upload, wait_until_done


def test_killed_worker_mid_job_ends_completed_or_failed_with_one_set_of_paragraphs(system, client, tmp_path):
    recording = tmp_path / "long.wav"
    make_dialogue(recording, TWO_SPEAKER_SCRIPT * 3)
    body = upload(client, recording)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the worker is really in the middle of it
        status = client.get(f"/transcription/status/{body['jobId']}").json()
        if status["status"] in ("transcribing", "diarizing") and (status["progress"] or 0) > 3:
            break
        time.sleep(0.2)
    assert status["status"] in ("transcribing", "diarizing"), status
    system.kill("transcriber")
    time.sleep(1)
    system.restart("transcriber")

    session = wait_until_done(client, body["sessionId"])
    assert session["status"] in ("completed", "failed"), session
    status = client.get(f"/transcription/status/{body['jobId']}").json()
    assert status["status"] == session["status"]
    transcript = client.get(f"/sessions/{body['sessionId']}/transcript").json()
    if session["status"] == "completed":
        ids = [p["id"] for p in transcript]
        assert ids == list(range(len(ids))) and len(transcript) >= len(TWO_SPEAKER_SCRIPT)
        texts = [p["text"] for p in transcript]
        assert len(texts) <= len(TWO_SPEAKER_SCRIPT * 3) + 3  # one set, not two
        assert status["attempt"] == 2, status  # the killed attempt was retried once, and that one finished
    else:
        assert transcript == [] and session["errorMessage"]
