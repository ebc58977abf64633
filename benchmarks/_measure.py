"""Run a worker in a subprocess; return its JSON result and the peak RSS of its process tree."""

from __future__ import annotations

import json
import subprocess
import time

import psutil


def run_worker(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` (which prints one JSON object as its last line); add ``wall_s`` and ``rss_mb``
    (peak summed RSS of the process and its children, sampled every 20 ms)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-4000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "wall_s": time.perf_counter() - t0, "rss_mb": peak / 2**20}
