"""Small hand-built frames for dataset tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alstm.dataset import Frame

DAYS = pd.bdate_range("2020-01-01", periods=8)  # d0 .. d7


def frame_from(records: list[tuple[str | pd.Timestamp, str, list[float], float]]) -> Frame:
    """A Frame from ``(date, instrument, features, label)`` records (features named f0, f1 …)."""
    index = pd.MultiIndex.from_tuples(
        [(pd.Timestamp(d), i) for d, i, _, _ in records], names=["datetime", "instrument"]
    )
    n = len(records[0][2])
    df = pd.DataFrame(
        [[*f, y] for _, _, f, y in records],
        index=index,
        columns=[*(f"f{k}" for k in range(n)), "LABEL0"],
        dtype=np.float32,
    )
    return Frame.from_frame(df.sort_index())


def toy_records() -> list[tuple[pd.Timestamp, str, list[float], float]]:
    """Four instruments over 8 days: A every day; B listed on d4; C suspended on d2-d3 (rows
    present, features and label NaN); D out of the market on d3-d4 (no rows). Feature f0 =
    10·day + instrument number, f1 = −f0; label = 100·instrument number + day."""
    recs = []
    for j, inst in enumerate("ABCD"):
        for t, day in enumerate(DAYS):
            if (inst == "B" and t < 4) or (inst == "D" and t in (3, 4)):
                continue
            f0 = 10.0 * t + j
            feats, label = [f0, -f0], 100.0 * j + t
            if inst == "C" and t in (2, 3):
                feats, label = [np.nan, np.nan], np.nan
            recs.append((day, inst, feats, label))
    return recs


@pytest.fixture
def toy() -> Frame:
    """The :func:`toy_records` frame."""
    return frame_from(toy_records())


def random_frame(seed: int = 0, n_days: int = 40, n_inst: int = 9, n_feat: int = 3) -> Frame:
    """Random float32 frame with NaNs, ties, late listings, membership gaps and label NaNs."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2019-06-03", periods=n_days)
    present = rng.random((n_days, n_inst)) > 0.1
    present[: n_days // 3, 0] = False  # listed late
    recs = []
    for t, day in enumerate(days):
        for j in range(n_inst):
            if not present[t, j]:
                continue
            f = np.round(rng.normal(size=n_feat), 1)  # rounding makes ties
            f[rng.random(n_feat) < 0.1] = np.nan
            y = np.nan if rng.random() < 0.1 else float(np.round(rng.normal(), 2))
            recs.append((day, f"S{j:02d}", list(f), y))
    return frame_from(recs)
