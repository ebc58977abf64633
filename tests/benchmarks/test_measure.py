"""benchmarks/_measure.py: a worker's result, exit status and peak memory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _measure import run_worker


def test_the_peak_of_a_short_spike_is_counted() -> None:
    """A 300 MB buffer held for 10 ms, between two samples, still counts (the kernel's peak)."""
    code = (
        "import json, time, numpy as np; a = np.ones(300 * 2**20, np.uint8); time.sleep(0.01); "
        "del a; time.sleep(0.2); print(json.dumps({'x': 1}))"
    )
    result = run_worker([sys.executable, "-c", code])
    assert result["x"] == 1
    assert result["rss_mb"] > 300
    assert result["wall_s"] > 0.2


def test_the_tree_is_summed() -> None:
    """A child holding 200 MB while its parent holds 200 MB: more than either alone."""
    child = "import time, numpy as np; a = np.ones(200 * 2**20, np.uint8); time.sleep(2.5)"
    code = (
        "import json, subprocess, sys, time, numpy as np; a = np.ones(200 * 2**20, np.uint8); "
        f"subprocess.run([sys.executable, '-c', {child!r}]); print(json.dumps({{}}))"
    )
    assert run_worker([sys.executable, "-c", code])["rss_mb"] > 400


def test_a_failing_worker_raises_with_its_error() -> None:
    with pytest.raises(RuntimeError, match=r"failed \(3\):\n.*boom"):
        run_worker([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])
