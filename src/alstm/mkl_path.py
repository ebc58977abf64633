"""oneMKL's AVX-512 kernels on AMD CPUs: the ``_mkl_intel_path`` shim, loaded before torch.

torch's CPU matrix products outside oneDNN (``mm``, ``addmm``; here the GRU's weight gradients
and the input projection's and attention's products) run on the oneMKL that torch carries.
oneMKL chooses its kernels by CPU vendor first, and on AMD CPUs it runs generic AVX2 code even
where the CPU has AVX-512. The shim answers oneMKL's vendor test with yes, so it picks the
kernels it would use on an Intel CPU with the same instruction set. On the 2-core AMD EPYC
(Zen 5) this was developed on, one thread: a GRU step's weight-gradient product
``[192, 400] × [400, 64]`` took 44 instead of 99 µs, and an Alpha158 (TS) training batch 29 to
30 instead of 36 ms.

Products change by float32 rounding only (the kernels add in another order). The shim only
works when it is in the process before torch: the dynamic linker binds torch's calls into
oneMKL when torch's library is loaded. ``import alstm`` loads it; in a process that imported
torch first it is skipped, and ``STATUS`` says so. ``ALSTM_MKL_INTEL_PATH=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import platform
import sys
from pathlib import Path

ENV = "ALSTM_MKL_INTEL_PATH"
SHIM = "alstm._mkl_intel_path"
CPUINFO = Path("/proc/cpuinfo")

#: What ``enable`` did: ``"on"``, or ``"off: <why>"``.
STATUS = "off: not tried"


def enable() -> str:
    """Load the shim into the global symbol scope where it applies (Linux on an AMD CPU with
    AVX-512, torch not yet imported, not turned off); returns the new ``STATUS``."""
    global STATUS
    if STATUS != "on":
        STATUS = _load()
    return STATUS


def _load() -> str:
    if os.environ.get(ENV, "1") == "0":
        return f"off: {ENV}=0"
    if not (sys.platform.startswith("linux") and platform.machine() == "x86_64"):
        return "off: not Linux on x86-64"
    if not amd_with_avx512(CPUINFO.read_text() if CPUINFO.exists() else ""):
        return "off: not an AMD CPU with AVX-512"
    if "torch" in sys.modules:
        return "off: torch was imported before alstm"
    path = shim_path()
    if path is None:
        return "off: the shim was not built (no C compiler when alstm was installed)"
    ctypes.CDLL(path, mode=os.RTLD_GLOBAL)
    return "on"


def shim_path() -> str | None:
    """File of the built shim library, or None when it was not built."""
    spec = importlib.util.find_spec(SHIM)
    return None if spec is None else spec.origin


def cpu_fields(cpuinfo: str) -> dict[str, str]:
    """``/proc/cpuinfo``'s text as ``{field: value}``, with the first CPU's values."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def amd_with_avx512(cpuinfo: str) -> bool:
    """True if ``/proc/cpuinfo``'s text describes an AMD CPU with AVX-512 (``avx512f``)."""
    fields = cpu_fields(cpuinfo)
    flags = fields.get("flags", "").split()
    return fields.get("vendor_id") == "AuthenticAMD" and "avx512f" in flags
