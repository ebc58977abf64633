from __future__ import annotations

import numpy as np

from alstm.data.panel import Panel
from alstm.features.alpha360 import alpha360
from alstm.features.engine import evaluate


def test_columns_and_expressions() -> None:
    cfg = alpha360()
    cols = list(cfg)
    assert len(cols) == 360
    assert cols[:2] == ["CLOSE59", "CLOSE58"] and cols[59] == "CLOSE0" and cols[60] == "OPEN59"
    assert cols[-60] == "VOLUME59" and cols[-1] == "VOLUME0"
    assert cfg["CLOSE0"] == "$close/$close"
    assert cfg["VWAP3"] == "Ref($vwap, 3)/$close"
    assert cfg["VOLUME7"] == "Ref($volume, 7)/($volume+1e-12)"


def test_values_are_lagged_ratios(panel: Panel) -> None:
    f = evaluate(panel, alpha360(lags=5), "2020-03-02", "2020-05-01", "mkt")
    s = f.xs("S001", level="instrument")
    c = panel["close"][:, 1]
    row = panel.calendar.get_loc(s.index[10])
    assert s["CLOSE0"].iloc[10] == 1
    assert s["CLOSE3"].iloc[10] == np.float32(c[row - 3] / c[row])
    assert s["HIGH0"].iloc[10] == np.float32(panel["high"][row, 1] / c[row])
