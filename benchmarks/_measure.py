"""Run a worker in a subprocess; return its JSON result and the peak RSS of its process tree.
Name the CPU the figures were taken on."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time

import psutil

PAGE = os.sysconf("SC_PAGE_SIZE")


def run_worker(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` (which prints one JSON object as its last line); add ``wall_s`` and ``rss_mb``:
    the larger of the peak summed RSS of the process and its children, sampled every 50 ms,
    and the kernel's record of the largest single process's peak (exact for one process).

    Why so sparse: the workers keep both cores busy with threads that wait for each other, so
    any CPU the sampler takes stalls them. Listing the process tree on every 20 ms sample took
    ~1.4 ms of CPU each and made alstm's whole run 7–9% slower (163.8 and 159.0 s against 150.3
    and 148.7 s unsampled, alternating); the tree is now listed once a second and each process's
    RSS read from ``/proc``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    root = psutil.Process(proc.pid)
    peak, pids, listed = 0, [proc.pid], 0.0
    while not (done := os.wait4(proc.pid, os.WNOHANG))[0]:
        if time.monotonic() - listed > 1.0:
            try:
                pids = [proc.pid, *(child.pid for child in root.children(recursive=True))]
            except psutil.Error:
                pass
            listed = time.monotonic()
        peak = max(peak, sum(_rss(pid) for pid in pids))
        time.sleep(0.05)
    _, status, usage = done
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, with its resource usage
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-4000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    peak = max(peak, usage.ru_maxrss * 1024)  # ru_maxrss: KiB on Linux
    return {**result, "wall_s": time.perf_counter() - t0, "rss_mb": peak / 2**20}


def _rss(pid: int) -> int:
    """Resident bytes of process ``pid`` (0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def machine(cpuinfo: str | None = None) -> str:
    """The CPU this runs on, from ``cpuinfo`` (default: ``/proc/cpuinfo``'s text), e.g.
    ``"AMD EPYC, family 25 model 17, 2 CPUs, AVX-512"``.

    Why in every result: the ratios depend on the CPU, not only on the code. alstm's training is
    bound by float32 matrix products and Qlib's run by Python, so a CPU with twice the vector
    width speeds up alstm's side far more (README, "The ratio depends on the CPU")."""
    from alstm.mkl_path import CPUINFO, cpu_fields

    if cpuinfo is None:
        cpuinfo = CPUINFO.read_text() if CPUINFO.exists() else ""
    fields = cpu_fields(cpuinfo)
    parts = [fields.get("model name") or platform.processor() or platform.machine()]
    if "cpu family" in fields and "model" in fields:
        parts.append(f"family {fields['cpu family']} model {fields['model']}")
    cpus = sum(line.partition(":")[0].strip() == "processor" for line in cpuinfo.splitlines())
    count = cpus or os.cpu_count() or 0
    parts.append(f"{count} CPU{'' if count == 1 else 's'}")
    if "avx512f" in fields.get("flags", "").split():
        parts.append("AVX-512")
    return ", ".join(parts)
