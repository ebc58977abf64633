"""The expression engine against a per-instrument pandas emulation of Qlib's evaluation."""

from __future__ import annotations

import gc
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from alstm.data.panel import Panel
from alstm.features import engine
from alstm.features.alpha158 import alpha158
from alstm.features.alpha360 import alpha360
from alstm.features.engine import ResultBuffer, compile_expression, evaluate
from alstm.features.factors import LABEL
from alstm.features.parser import ExpressionError
from tests.features.conftest import make_panel

S = pd.Series
START, END = "2020-02-10", "2020-07-01"

# expression → pandas function of the instrument's loaded fields (a dict of Series)
CASES: dict[str, Callable[[dict[str, S]], S]] = {
    "Mean($close, 5)/$close": lambda f: f["close"].rolling(5, min_periods=1).mean() / f["close"],
    "Ref($close, -2)/Ref($close, -1) - 1": lambda f: (
        f["close"].shift(-2) / f["close"].shift(-1) - 1
    ),
    "Ref($close, 20)/$close": lambda f: f["close"].shift(20) / f["close"],
    "Std($volume, 10)/($volume+1e-12)": lambda f: (
        f["volume"].rolling(10, min_periods=1).std() / (f["volume"] + 1e-12)
    ),
    "Mean($close>Ref($close, 1), 5)": lambda f: (
        (f["close"] > f["close"].shift(1)).astype(float).rolling(5, min_periods=1).mean()
    ),
    "IdxMax($high, 5)/5": lambda f: (
        f["high"].rolling(5, min_periods=1).apply(lambda a: a.argmax() + 1, raw=True) / 5
    ),
    "Greater($close-Ref($close, 1), 0)": lambda f: np.maximum(f["close"] - f["close"].shift(1), 0),
    "($high-Greater($open, $close))/($high-$low+1e-12)": lambda f: (
        (f["high"] - np.maximum(f["open"], f["close"])) / (f["high"] - f["low"] + 1e-12)
    ),
    "Sum(Abs($close-Ref($close, 1)), 20)": lambda f: (
        (f["close"] - f["close"].shift(1)).abs().rolling(20, min_periods=1).sum()
    ),
    "If($close > $open, $high, -$low)": lambda f: pd.Series(
        np.where(f["close"] > f["open"], f["high"], 0 - f["low"]), index=f["close"].index
    ),
    "Sign($close - Ref($close, 1))": lambda f: np.sign(
        (f["close"] - f["close"].shift(1)).astype(np.float32)
    ),
    "Log($volume+1)": lambda f: np.log(f["volume"] + 1),
    "Power($close, 2) - $close*$close": lambda f: np.power(f["close"], 2) - f["close"] * f["close"],
    # Qlib quirks: Delta extends the window by n - 1 rows only, EMA depends on the load start.
    "Delta($close, 3)": lambda f: f["close"] - f["close"].shift(3),
    "EMA($close, 10)": lambda f: f["close"].ewm(span=10, min_periods=1).mean(),
    "Ref($close, 0)": lambda f: pd.Series(f["close"].iloc[0], index=f["close"].index),
    "Mean($close, 0)": lambda f: f["close"].expanding(min_periods=1).mean(),
}


def qlib_like(panel: Panel, text: str, fn: Callable[[dict[str, S]], S], market: str) -> pd.Series:
    """Qlib's recipe: per instrument, load [start - left, end + right] ∩ stored span, compute,
    cast to float32, cut to [start, end], keep membership days."""
    e = compile_expression(text)
    cal = panel.calendar
    s, t = cal.searchsorted(pd.Timestamp(START)), cal.searchsorted(pd.Timestamp(END), "right") - 1
    lo, hi = max(s - e.left, 0), t + e.right
    parts = []
    for j, sym in enumerate(panel.instruments):
        a, b = max(panel.first[j], lo), min(panel.last[j], hi)
        if a > b:
            continue
        fields = {k: S(v[a : b + 1, j], index=cal[a : b + 1]) for k, v in panel.fields.items()}
        with np.errstate(all="ignore"):
            out = fn(fields).astype(np.float32)
        out = out.loc[cal[s] : cal[t]]
        out = out[panel.market_mask(market)[cal.get_indexer(out.index), j]]
        parts.append(
            pd.Series(out.to_numpy(), index=pd.MultiIndex.from_product([out.index, [sym]]))
        )
    ref = pd.concat(parts).sort_index()
    ref.index.names = ["datetime", "instrument"]
    return ref


@pytest.mark.parametrize("text", list(CASES))
def test_expression_matches_qlib_recipe(panel: Panel, text: str) -> None:
    ours = evaluate(panel, {"x": text}, START, END, "mkt")["x"]
    ref = qlib_like(panel, text, CASES[text], "mkt")
    assert ours.index.equals(ref.index)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), rtol=1e-6, atol=1e-7)


def test_many_expressions_share_subexpressions(panel: Panel) -> None:
    exprs = {f"e{i}": t for i, t in enumerate(CASES)}
    together = evaluate(panel, exprs, START, END, "mkt")
    for name, text in exprs.items():
        alone = evaluate(panel, {name: text}, START, END, "mkt")[name]
        np.testing.assert_array_equal(together[name].to_numpy(), alone.to_numpy())


def test_rows_follow_spans_and_membership(panel: Panel) -> None:
    frame = evaluate(panel, {"c": "$close"}, START, END, "mkt")
    insts = set(frame.index.get_level_values("instrument"))
    assert "S005" not in insts  # never a member
    s6 = frame.xs("S006", level="instrument")
    assert s6.index[0] == panel.calendar[65]  # membership starts on row 65
    s3 = frame.xs("S003", level="instrument")
    assert s3.index[-1] == panel.calendar[90]  # stored span ends on row 90 (member until the end)
    assert frame["c"].isna().sum() > 0  # suspended member days stay as NaN rows
    everyone = evaluate(panel, {"c": "$close"}, START, END, None)
    assert len(everyone) > len(frame)


def test_rows_outside_the_market_change_nothing() -> None:
    """Columns are computed only around the market's rows (and reordered for that): every factor
    equals the same factor computed on every stored row."""
    panel = make_panel(seed=3, T=260)
    exprs = {**alpha158(), **{f"a{i}": e for i, e in enumerate(alpha360().values())}}
    exprs.update(LABEL, ema="EMA($close, 12)/$close", exp="Mean($close, 0)/$close")
    market = evaluate(panel, exprs, "2020-03-02", END, "mkt")
    everywhere = evaluate(panel, exprs, "2020-03-02", END).loc[market.index]
    np.testing.assert_array_equal(market.to_numpy(), everywhere.to_numpy())


def test_statistics_of_one_series_and_window_are_computed_together(
    panel: Panel, monkeypatch: pytest.MonkeyPatch
) -> None:
    exprs = {
        "beta": "Slope($close, 10)/$close",
        "rsqr": "Rsquare($close, 10)",
        "resi": "Resi($close, 10)/$close",
        "qtlu": "Quantile($close, 10, 0.8)/$close",
        "qtld": "Quantile($close, 10, 0.2)/$close",
        "med": "Med($close, 10)",
        "max": "Max($high, 5)/$close",
        "imax": "IdxMax($high, 5)/5",
        "min": "Min($low, 5)/$close",
        "imin": "IdxMin($low, 5)/5",
        "other": "Slope($close, 20)",  # another window: alone
    }
    batches = []
    original = engine._Evaluator._compute_batch

    def spy(self, node, key, evaluated):  # type: ignore[no-untyped-def]
        batches.append(sorted(self.calls[k][0].op for k in self.batches[key]))
        return original(self, node, key, evaluated)

    monkeypatch.setattr(engine._Evaluator, "_compute_batch", spy)
    together = evaluate(panel, exprs, START, END, "mkt")
    assert sorted(batches) == [
        ["IdxMax", "Max"],
        ["IdxMin", "Min"],
        ["Med", "Quantile", "Quantile"],
        ["Resi", "Rsquare", "Slope"],
    ]
    for name, text in exprs.items():
        alone = evaluate(panel, {name: text}, START, END, "mkt")[name]
        np.testing.assert_array_equal(together[name].to_numpy(), alone.to_numpy(), err_msg=name)


@pytest.mark.parametrize("extra_rows", [0, 5, -1])
def test_result_buffer_receives_the_result(panel: Panel, extra_rows: int) -> None:
    exprs = {"a": "Mean($close, 5)/$close", "b": "$volume"}
    want = evaluate(panel, exprs, START, END, "mkt")
    buffer = ResultBuffer(len(want) + extra_rows, 2)
    got = evaluate(panel, exprs, START, END, "mkt", buffer=buffer)
    pd.testing.assert_frame_equal(got, want)
    shares = np.shares_memory(got["a"].to_numpy(), buffer._array)
    assert shares == (extra_rows >= 0)  # too small a buffer is not used


@pytest.mark.parametrize("enabled", [True, False])
def test_garbage_collector_is_paused_while_evaluating_and_restored(
    panel: Panel, enabled: bool
) -> None:
    seen = []
    register = engine._Evaluator.__init__

    def spy(self, *args):  # type: ignore[no-untyped-def]
        seen.append(gc.isenabled())
        register(self, *args)

    (gc.enable if enabled else gc.disable)()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(engine._Evaluator, "__init__", spy)
            evaluate(panel, {"x": "Mean($close, 5)"}, START, END, "mkt")
        assert seen == [False]
        assert gc.isenabled() == enabled
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Foo($close, 5)", "unknown operator 'Foo'; known operators: Abs, Add"),
        ("Mean($close)", "Mean takes 2 arguments (series, window), got 1"),
        ("Mean($close, 2.5)", "window must be a non-negative integer or a float in (0, 1)"),
        ("Rank($close, 0.5)", "window must be a non-negative integer, got 0.5"),
        ("Mean($close, $open)", "the window must be a number"),
        ("Ref($close, 1.5)", "the shift must be an integer"),
        ("Skew($close, 2)", "window must be 0 or at least 3"),
        ("EMA($close, 0)", "expanding window (0) is not supported"),
    ],
)
def test_compile_errors(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text)
    assert message in str(info.value)
    assert "^ (position" in str(info.value)


def test_missing_field_is_named(panel: Panel) -> None:
    with pytest.raises(ExpressionError, match=r"fields \['factor'\] are not loaded"):
        evaluate(panel, {"x": "$factor"}, START, END)


def test_window_extension() -> None:
    e = compile_expression("Mean(Ref($close, 3), 5) / Ref($close, -2)")
    assert (e.left, e.right) == (7, 2)
    assert compile_expression("Corr($close, Log($volume+1), 60)").left == 59
    assert compile_expression("Delta($close, 5)").left == 4  # Qlib counts Delta as a rolling op
    assert not compile_expression("Mean($close, 5)").load_dependent
    assert compile_expression("Mean(EMA($close, 5), 2)").load_dependent


def test_division_by_zero_gives_inf_not_error(panel: Panel) -> None:
    frame = evaluate(panel, {"x": "$close/($close-$close)", "y": "Log($close-$close)"}, START, END)
    finite = frame.dropna()
    assert np.isinf(finite["x"]).all() and (finite["y"] == -np.inf).all()
