"""bench/run_all.py and the RESULT-line convention (bench/results.py): a fake bench folder with a benchmark that
prints figures, one that fails, one that hangs, a library module and a missing interpreter — run for real as child
processes — and the RESULTS.md written from them. No real benchmark runs here (they are not tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import results  # noqa: E402
import run_all  # noqa: E402

GOOD = '''
from results import result
print("human-readable report")
result("latency p50", 2.2, "ms", baseline=2.0, baseline_name="in-process", goal="<= 1.10x")
result("growth", 80, "MB", goal="<= 64 MB")
if __name__ == "__main__":
    pass
'''
FAILS = '''
from results import result
result("partial", 1.0, "s")
if __name__ == "__main__":
    raise SystemExit("boom: the system did not start")
'''
HANGS = '''
import time
if __name__ == "__main__":
    time.sleep(60)
'''
LIBRARY = "def helper():\n    return 1\n"


@pytest.fixture
def bench_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "results.py").write_text((ROOT / "bench" / "results.py").read_text())
    for name, text in {"good": GOOD, "fails": FAILS, "hangs": HANGS, "streams": LIBRARY}.items():
        (bench / f"{name}.py").write_text(text)
    (bench / "needs_torch.py").write_text('if __name__ == "__main__":\n    pass\n')
    monkeypatch.setattr(run_all, "BENCH", bench)
    monkeypatch.setattr(run_all, "RUNNERS", {"needs_torch": run_all.Runner(".venv-nonexistent/bin/python"),
                                            "hangs": run_all.Runner(timeout_s=2)})
    return bench


def test_goals_on_ratio_and_on_value() -> None:
    assert results.goal_met({"ratio": 1.05, "value": 9, "goal": "<= 1.10x"}) is True
    assert results.goal_met({"ratio": 0.91, "value": 9, "goal": ">= 0.95x"}) is False
    assert results.goal_met({"value": 80, "goal": "<= 64 MB"}) is False
    assert results.goal_met({"value": 80, "goal": "≤ 100 MB"}) is True
    assert results.goal_met({"value": 80}) is None
    assert results.goal_met({"value": 80, "goal": "<= 1.1x"}) is None  # a ratio goal with no ratio
    assert results.parse("RESULT {not json") is None and results.parse("hello") is None


def test_run_all_collects_figures_and_reports_what_did_not_run(bench_dir: Path) -> None:
    assert run_all.discover() == ["fails", "good", "hangs", "needs_torch"]  # streams.py is a library
    outcomes = [run_all.run_one(name, 60, bench_dir) for name in run_all.discover()]
    by_name = {o.name: o for o in outcomes}
    good = by_name["good"]
    assert good.status == "ok"
    assert [(f["name"], f["value"], f.get("ratio")) for f in good.figures] == [("latency p50", 2.2, 1.1),
                                                                             ("growth", 80.0, None)]
    assert by_name["fails"].status == "failed (rc 1)" and "boom" in by_name["fails"].tail
    assert [f["name"] for f in by_name["fails"].figures] == ["partial"]  # what it printed before failing is kept
    assert by_name["hangs"].status == "timed out after 2 s"
    assert by_name["needs_torch"].status.startswith("not run: .venv-nonexistent/bin/python does not exist")

    import datetime
    text = run_all.render(outcomes, datetime.datetime(2026, 1, 1), ("1.0 1.0 1.0", "2.0 2.0 2.0"))
    assert "| latency p50 | 2.200 ms | 2.000 (in-process) | 1.100x | <= 1.10x | yes |" in text
    assert "| growth | 80.0 MB |  |  | <= 64 MB | **no** |" in text
    assert "Goals: 1 met, 1 not met; 1 of 4 benchmarks ran to the end." in text
    assert "`bench/needs_torch.py` — not run: .venv-nonexistent/bin/python does not exist" in text
    assert "- commit: " in text and "- machine: " in text
