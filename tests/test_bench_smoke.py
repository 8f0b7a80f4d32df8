"""The benchmark still runs end to end (tiny sizes); its figures are printed, never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["default", "tornado"])
def test_benchmark_runs_and_reports_every_section(tmp_path, target):
    out = tmp_path / "bench.json"
    env = dict(os.environ)
    sections: list[str] = []
    if target == "tornado":  # the fallback target: its ceiling and one end-to-end run say enough
        env["JOBQUEUE_BENCH_TARGET"] = "tornado"
        sections = ["--sections", "big_queue"]
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "run.py"), "--quick", "--jobs", "300", "--queued", "3000",
         "--submit-seconds", "1", "--json", str(out), *sections],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    expected = ["ceiling", "end_to_end", "big_queue"]
    if target == "default":
        expected += ["end_to_end_100_websockets", "end_to_end_2_processes", "submission", "storage",
                     "end_to_end_processes", "latency"]
    else:
        assert "submission" not in report  # --sections left it out
    for section in expected:
        assert section in report, section
    assert report["end_to_end"]["bodies_checked"] == 20
    assert report["big_queue"]["queued"] == 3000
    if target == "tornado":
        assert report["target"]["kind"].startswith("tornado")
