"""Small generated panels for factor tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alstm.data.panel import Panel


def make_panel(seed: int = 0, T: int = 140, N: int = 7) -> Panel:
    """Random OHLCV panel with late listings, delistings, suspensions, flat stretches and a
    market whose membership changes."""
    rng = np.random.default_rng(seed)
    cal = pd.bdate_range("2020-01-01", periods=T)
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.02, (T, N)), axis=0))
    close[40:48, 1] = close[40, 1]  # a flat stretch: zero variance windows
    open_ = close * np.exp(rng.normal(0, 0.01, (T, N)))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.01, (T, N))))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.01, (T, N))))
    volume = rng.lognormal(12, 0.5, (T, N))
    first = np.array([0, 0, 30, 0, 5, 0, 60])
    last = np.array([T - 1, T - 1, T - 1, 90, T - 1, T - 1, T - 1])
    vwap = (open_ + high + low + close) / 4
    fields = {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "vwap": vwap,
    }
    fields = {k: v.astype(np.float32) for k, v in fields.items()}
    rows = np.arange(T)[:, None]
    outside = (rows < first) | (rows > last)
    suspended = np.zeros((T, N), bool)
    suspended[50:55, 0] = suspended[70:71, 3] = suspended[31:34, 2] = True
    for arr in fields.values():
        arr[outside | suspended] = np.nan
    member = np.zeros((T, N), bool)
    member[:, :4] = True
    member[80:, 4] = True
    member[100:, 0] = False
    member[65:, 6] = True
    insts = tuple(f"S{j:03d}" for j in range(N))
    return Panel(cal, insts, fields, first, last, {"mkt": member})


@pytest.fixture
def panel() -> Panel:
    """A 140-day × 7-instrument random panel."""
    return make_panel()
