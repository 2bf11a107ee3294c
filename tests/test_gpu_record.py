"""bench/gpu_record.py on a machine without a GPU: every part is skipped with a line saying why, and the
record is still written (the figures themselves are taken on a GPU machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_record.py"


@pytest.mark.skipif(jax.devices()[0].platform == "gpu", reason="on a GPU machine the record really runs")
def test_without_a_gpu_every_part_is_skipped_and_the_record_written(tmp_path):
    out = tmp_path / "record.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(out.read_text())
    parts = record["parts"]
    assert list(parts) == ["gcn", "re_10k", "train_steps", "supernet", "darts_epoch", "bf16"]
    assert all(p["status"] == "skipped" and "no GPU" in p["why"] for p in parts.values())
    assert proc.stdout.count("skipped: no GPU") == 6


def test_unknown_part_is_refused():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--parts", "gcn,typo"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0 and "--parts: unknown typo" in proc.stderr
