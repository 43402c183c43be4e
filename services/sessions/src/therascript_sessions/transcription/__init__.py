"""The transcription pipeline of the sessions service: pure library code, no I/O besides the audio file.

Stages, in the order the transcription job runs them (ARCHITECTURE.md, issue 2 "Sessions"):

1. `audio.probe`            — check an upload by content (ffprobe) and read its duration.
2. `asr.transcribe`         — faster-whisper speech-to-text with word timestamps (MODELS.md), the audio
   streamed and transcribed in windows of ~5 minutes, so memory does not grow with length.
   The job persists the `AsrResult` (`to_json`) before the next stage, so a diarization
   failure never loses the transcript.
3. `diarization.assign_speakers` — per-word speaker labels (`diarize` also gives the speaker turns):
   VAD speech regions, voice embeddings, clustering (numSpeakers honoured, or estimated when None),
   Viterbi resegmentation; or a local pyannote.audio pipeline (`pyannote_backend`) when configured.
   Only when numSpeakers >= 2. Measured on real speech by bench/quality.py.
4. `paragraphs.build_paragraphs` — words → paragraphs (original-therascript.md §6.3 step 7), split at
   every speaker change; each paragraph keeps its words (stored, served by GetTranscriptWords).

The package imports nothing heavy: faster-whisper, torch and resemblyzer are imported lazily
inside the functions that need them, so `import therascript_sessions` never pulls torch.
"""
