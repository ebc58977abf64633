"""Tiny hand-built Qlib data directories for data-layer tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alstm.data.qlib_format import write_bin

CAL = pd.bdate_range("2020-01-01", periods=10)


def make_dir(root: Path) -> Path:
    """A 10-day calendar, 3 instruments with different spans, 2 fields, 2 markets."""
    (root / "calendars").mkdir(parents=True)
    (root / "calendars" / "day.txt").write_text("".join(f"{d:%Y-%m-%d}\n" for d in CAL))
    inst = root / "instruments"
    inst.mkdir()
    (inst / "all.txt").write_text(
        "AAA\t2020-01-01\t2020-01-14\nBBB\t2020-01-03\t2020-01-14\nCCC\t2020-01-01\t2020-01-08\n"
    )
    # AAA is a member twice (a gap), BBB once, CCC never.
    (inst / "mkt.txt").write_text(
        "AAA\t2020-01-01\t2020-01-03\nAAA\t2020-01-08\t2020-01-31\nBBB\t2020-01-06\t2020-01-10\n"
    )
    feats = root / "features"
    for sym, start, n in [("aaa", 0, 10), ("bbb", 2, 8), ("ccc", 0, 6)]:
        (feats / sym).mkdir(parents=True)
        close = 10.0 + np.arange(n, dtype=np.float32) + start
        if sym == "bbb":
            close[3] = np.nan  # a suspension inside the span
        write_bin(feats / sym / "close.day.bin", start, close)
        write_bin(feats / sym / "volume.day.bin", start, np.full(n, 100.0, np.float32))
    return root


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """Path of a freshly built tiny data directory."""
    return make_dir(tmp_path / "qlib")
