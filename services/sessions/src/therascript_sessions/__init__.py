"""The sessions service: sessions, transcript paragraphs, speaker labels, audio files, transcription jobs.

Layout (by domain, STYLE.md): `sessions.py`, `transcripts.py`, `audio.py`, `uploads.py`, `jobs.py`
(the service layer, no gRPC/HTTP), `storage/` (tables, migrations, unit of work), `outbox.py`
(side effects delivered after commit), `transcription/` (the pipeline and the RQ job, worker side),
`servicer.py` (thin gRPC layer), `server.py` and `worker.py` (wiring).
"""
