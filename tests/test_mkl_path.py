"""mkl_path: oneMKL's AVX-512 kernels on AMD CPUs through the shim loaded before torch."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from alstm import mkl_path

AMD_AVX512 = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sse avx2 avx512f avx512bw\n"
AMD_AVX2 = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu sse avx2\n"
INTEL_AVX512 = "vendor_id\t: GenuineIntel\nflags\t\t: fpu sse avx2 avx512f\n"
HOST_APPLIES = (
    sys.platform.startswith("linux")
    and platform.machine() == "x86_64"
    and mkl_path.CPUINFO.exists()
    and mkl_path.amd_with_avx512(mkl_path.CPUINFO.read_text())
)

# In a fresh process: import alstm (or not) before torch, run one product, then report what
# alstm.mkl_path did and oneMKL's code path (mkl_serv_get_cpu_type: 0 is its non-Intel path).
PROBE = """
import ctypes, json, os, sys
if sys.argv[1] == "alstm-first":
    import alstm
import torch
from alstm import mkl_path
torch.randn(8, 8) @ torch.randn(8, 8)
lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
cpu_type = getattr(lib, "mkl_serv_get_cpu_type", None)
print(json.dumps({"status": mkl_path.STATUS, "cpu_type": cpu_type() if cpu_type else None}))
"""


def _probe(order: str, **env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, order],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [(AMD_AVX512, True), (AMD_AVX2, False), (INTEL_AVX512, False), ("", False)],
)
def test_amd_with_avx512_reads_vendor_and_flags(cpuinfo: str, expected: bool) -> None:
    assert mkl_path.amd_with_avx512(cpuinfo) is expected


def test_turned_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mkl_path.ENV, "0")
    assert mkl_path._load() == f"off: {mkl_path.ENV}=0"


@pytest.mark.skipif(not HOST_APPLIES, reason="needs Linux on an AMD CPU with AVX-512")
def test_skipped_once_torch_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch  # noqa: F401  (the test process has it; make sure)

    monkeypatch.delenv(mkl_path.ENV, raising=False)
    assert mkl_path._load() == "off: torch was imported before alstm"


def test_other_cpus_are_left_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(mkl_path.ENV, raising=False)
    (tmp_path / "cpuinfo").write_text(INTEL_AVX512)
    monkeypatch.setattr(mkl_path, "CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(mkl_path.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(mkl_path.sys, "platform", "linux")
    assert mkl_path._load() == "off: not an AMD CPU with AVX-512"


@pytest.mark.skipif(not HOST_APPLIES, reason="needs Linux on an AMD CPU with AVX-512")
@pytest.mark.skipif(mkl_path.shim_path() is None, reason="the shim was not built (no compiler)")
def test_alstm_before_torch_puts_onemkl_on_its_intel_path() -> None:
    first = _probe("alstm-first")
    assert first["status"] == "on"
    assert first["cpu_type"] not in (0, None)
    assert _probe("torch-first")["cpu_type"] == 0
    off = _probe("alstm-first", **{mkl_path.ENV: "0"})
    assert off == {"status": f"off: {mkl_path.ENV}=0", "cpu_type": 0}
