"""benchmarks/_measure.py: a worker's result, exit status and peak memory; the CPU's name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _measure import machine, run_worker


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


def test_machine_names_the_cpu_its_count_and_avx512() -> None:
    cpu = (
        "processor\t: {n}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
        "model name\t: AMD EPYC 9R14\nflags\t\t: fpu sse2 avx2 {extra}\n\n"
    )
    two = cpu.format(n=0, extra="avx512f avx512bw") + cpu.format(n=1, extra="avx512f avx512bw")
    assert machine(two) == "AMD EPYC 9R14, family 25 model 17, 2 CPUs, AVX-512"
    assert machine(cpu.format(n=0, extra="")) == "AMD EPYC 9R14, family 25 model 17, 1 CPU"
