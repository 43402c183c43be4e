"""Overlapped-speech detection (transcription/overlap.py) on real meeting speech: the fourteen pyannote-audio
test clips with their RTTM references (real_speech fetches them, as for test_quality), and the second-speaker
turns it adds.

Figures here (segmentation-3.0, STEP_S 10, THRESHOLD 0.3 on the two-speaker probability): precision 0.89, recall
0.54 of the reference's 61 s of overlap (0.96 / 0.40 with the argmax class); the bounds below fail a detector
that finds nothing, or one that calls ordinary speech overlap.
Caveat for the figures: these clips are AMI excerpts, and AMI is among segmentation-3.0's training data.
"""

from __future__ import annotations

import pytest
import real_speech

from therascript_sessions.transcription import overlap

MIN_PRECISION = 0.8
MIN_RECALL = 0.3

pytestmark = pytest.mark.timeout(600)


def _samples(clip):
    import soundfile

    samples, rate = soundfile.read(clip.audio, dtype="float32")
    assert rate == overlap.SAMPLE_RATE
    return samples


def _detected(samples, block: int | None = None) -> list[tuple[float, float]]:
    detector = overlap.OverlapDetector()
    block = block or len(samples)
    for start in range(0, len(samples), block):
        detector.feed(samples[start : start + block])
    return detector.regions()


def test_the_segmentation_model_ships_with_the_transcriber_environment():
    assert overlap.is_available() == (True, None)


def test_detected_overlap_is_mostly_real_and_finds_a_good_part_of_it():
    from pyannote.core import Annotation, Segment, Timeline

    found = both = reference_s = 0.0
    for clip in real_speech.diarization_clips():
        reference = Annotation(uri=clip.uri)
        for index, (start, end, speaker) in enumerate(clip.turns):
            reference[Segment(start, end), index] = speaker
        truth = reference.get_overlap().crop(Segment(*clip.uem))
        detected = Timeline([Segment(*region) for region in _detected(_samples(clip))]).support()
        found += detected.duration()
        reference_s += truth.duration()
        if len(detected) and len(truth):
            both += sum(segment.duration for segment in detected.crop(truth, mode="intersection"))
    assert reference_s > 30 and found > 0, (reference_s, found)
    assert both / found >= MIN_PRECISION, f"precision {both / found:.2f} ({found:.1f} s detected)"
    assert both / reference_s >= MIN_RECALL, f"recall {both / reference_s:.2f} of {reference_s:.1f} s"


def test_blocks_of_any_size_give_the_regions_of_one_pass():
    clip = next(c for c in real_speech.diarization_clips() if c.uri == "tst00")
    samples = _samples(clip)
    whole = _detected(samples)
    assert whole, "tst00 has ~18 s of overlap"
    assert _detected(samples, 117_000) == whole   # blocks that cut chunks anywhere
    assert _detected(samples[: overlap.SAMPLE_RATE * 4]) is not None   # shorter than one chunk: no error


def test_a_second_speaker_is_added_where_one_talks_over_the_other():
    turns = [(0.0, 5.0, 0), (5.0, 9.0, 1), (9.0, 12.0, 2)]
    assert overlap.add_second_speaker(turns, [(4.6, 5.4)]) == [(0.0, 5.0, 0), (4.6, 5.4, 0), (5.0, 9.0, 1),
                                                             (9.0, 12.0, 2)]
    assert overlap.add_second_speaker(turns, [(8.0, 8.6)]) == sorted(turns + [(8.0, 8.6, 2)])   # the nearest
    assert overlap.add_second_speaker(turns, [(20.0, 21.0)]) == turns   # in no turn: nothing to pair it with
    assert overlap.add_second_speaker([(0.0, 5.0, 0)], [(1.0, 2.0)]) == [(0.0, 5.0, 0)]   # one speaker
