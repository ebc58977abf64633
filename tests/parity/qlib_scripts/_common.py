"""Shared argument handling for the Qlib reference scripts (run inside .venv-qlib only)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def parse() -> tuple[Path, dict]:
    """``(out_path, kwargs)`` from ``--out FILE --args JSON``."""
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--args", default="{}")
    ns = p.parse_args()
    return ns.out, json.loads(ns.args)


def init_qlib(provider: str) -> None:
    """Initialise Qlib on a data directory with every cache off and one process."""
    import qlib

    qlib.init(
        provider_uri=provider,
        region="cn",
        expression_cache=None,
        dataset_cache=None,
        kernels=1,
        logging_level="WARNING",
    )
