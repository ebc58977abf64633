from __future__ import annotations

import numpy as np
import pytest

from alstm.data.panel import Panel
from alstm.features.alpha158 import alpha158
from alstm.features.engine import compile_expression, evaluate

FILTERED_20 = (
    "KLEN KLOW ROC60 STD5 RSQR5 RSQR10 RSQR20 RSQR60 RESI5 RESI10 CORR5 CORR10 CORR20 CORR60 "
    "CORD5 CORD10 CORD60 VSTD5 WVMA5 WVMA60"
).split()


def test_158_columns_in_qlib_order() -> None:
    cols = list(alpha158())
    assert len(cols) == 158 == len(set(cols))
    assert (
        cols[:13] == "KMID KLEN KMID2 KUP KUP2 KLOW KLOW2 KSFT KSFT2 OPEN0 HIGH0 LOW0 VWAP0".split()
    )
    assert cols[13:18] == ["ROC5", "ROC10", "ROC20", "ROC30", "ROC60"]
    assert cols[-1] == "VSUMD60"
    # The benchmark's FilterCol keeps Alpha158's order (SPEC §3).
    assert [c for c in cols if c in FILTERED_20] == FILTERED_20


def test_every_expression_compiles_with_expected_window() -> None:
    exprs = {k: compile_expression(v) for k, v in alpha158().items()}
    assert exprs["KMID"].left == 0
    assert exprs["ROC60"].left == 60
    assert exprs["MA60"].left == 59
    assert exprs["CORD60"].left == 60  # Ref(…, 1) inside a 60-day window
    assert max(e.right for e in exprs.values()) == 0


def test_knobs() -> None:
    assert len(alpha158(kbar=False)) == 149
    assert len(alpha158(price_fields=None)) == 154
    cfg = alpha158(price_windows=(0, 1), volume_windows=(0, 2), windows=(5,))
    assert cfg["OPEN1"] == "Ref($open, 1)/$close" and cfg["VOLUME2"].startswith("Ref($volume, 2)")
    assert len(cfg) == 9 + 8 + 2 + 29
    only = alpha158(kbar=False, price_fields=None, include=["LOW", "RSV"], windows=(5, 10))
    assert list(only) == ["MIN5", "MIN10", "RSV5", "RSV10"]
    assert "CORR5" not in alpha158(exclude=["CORR"])
    with pytest.raises(ValueError, match="unknown Alpha158 rolling families"):
        alpha158(include=["MIN"])


def test_known_values_on_a_panel(panel: Panel) -> None:
    f = evaluate(panel, alpha158(), "2020-01-01", "2020-07-01", "mkt")
    first = f.xs(panel.calendar[0], level="datetime")
    # min_periods=1: partial windows on the first day of history (SPEC §1).
    np.testing.assert_allclose(first["MA60"], 1.0, rtol=1e-6)
    assert (first["RANK5"] == 1).all() and (first["IMAX5"] == np.float32(0.2)).all()
    assert first["STD5"].isna().all() and first["ROC5"].isna().all()
    assert ((f["CNTD5"] >= -1) & (f["CNTD5"] <= 1)).all()
    # Flat close stretch (rows 40–47 of S001): zero variance makes RSQR and CORR NaN.
    flat = f.xs("S001", level="instrument").iloc[45]
    assert np.isnan(flat["RSQR5"]) and np.isnan(flat["CORR5"])
