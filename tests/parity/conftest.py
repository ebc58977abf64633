"""Parity tests: alstm against Qlib (pyqlib==0.9.7) on ../shared/data.

Qlib lives in its own virtual environment (``.venv-qlib``, made by ``make qlib-venv``); it is never
imported here. Each reference output is produced by a script in ``qlib_scripts/`` run with that
environment's Python and cached under ``.cache/qlib-ref/`` (keyed by the script's text, its
arguments and the data fingerprint), so ``make parity`` reruns fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "qlib_scripts"
CSI300 = Path(os.environ.get("ALSTM_SHARED_DATA", ROOT.parent / "shared" / "data")) / "cn_csi300"
QLIB_PYTHON = Path(os.environ.get("ALSTM_QLIB_PYTHON", ROOT / ".venv-qlib" / "bin" / "python"))
CACHE = Path(os.environ.get("ALSTM_QLIB_CACHE", ROOT / ".cache" / "qlib-ref"))


@pytest.fixture(scope="session")
def csi300_dir() -> Path:
    """The real CSI300 data directory (skips when it is absent)."""
    if not (CSI300 / "calendars").is_dir():
        pytest.skip(f"real data not found at {CSI300}")
    return CSI300


@pytest.fixture(scope="session")
def qlib_ref() -> Callable[..., Path]:
    """Run ``qlib_scripts/<script>.py --out FILE --args JSON`` once and return the cached FILE."""
    if not QLIB_PYTHON.exists():
        pytest.fail(f"{QLIB_PYTHON} not found: run `make qlib-venv` (make parity does)")

    def run(script: str, suffix: str = ".parquet", **kwargs: object) -> Path:
        src = SCRIPTS / f"{script}.py"
        args = json.dumps(kwargs, sort_keys=True, default=str)
        key = hashlib.sha256(src.read_bytes() + args.encode()).hexdigest()[:16]
        out = CACHE / f"{script}-{key}{suffix}"
        if not out.exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".tmp")
            cmd = [str(QLIB_PYTHON), str(src), "--out", str(tmp), "--args", args]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if proc.returncode != 0:
                sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
                pytest.fail(f"Qlib reference script {script} failed (exit {proc.returncode})")
            os.replace(tmp, out)
        return out

    return run
