from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from alstm.data.panel import Panel
from alstm.features import kernels
from alstm.features.engine import compile_expression, evaluate
from alstm.features.registry import _OPERATORS, operator_names, register_operator

SPEC_OPERATORS = (
    "Ref Mean Sum Std Var Skew Kurt Max Min IdxMax IdxMin Quantile Med Mad Rank Count Delta Slope "
    "Rsquare Resi WMA EMA Corr Cov Abs Sign Log Power Greater Less If Not And Or "
    "Add Sub Mul Div Gt Ge Lt Le Eq Ne"
).split()


@pytest.fixture
def cleanup() -> Iterator[None]:
    before = dict(_OPERATORS)
    yield
    _OPERATORS.clear()
    _OPERATORS.update(before)


def test_every_spec_operator_is_registered() -> None:
    assert set(SPEC_OPERATORS) <= set(operator_names())


def test_user_operator_is_usable_in_expressions(panel: Panel, cleanup: None) -> None:
    @register_operator("Ret", "xk")
    def ret(ctx, x, n):  # type: ignore[no-untyped-def]
        return x / kernels.shift(x, n, ctx.start) - 1

    e = compile_expression("Ret($close, 2)")
    assert (e.left, e.right) == (2, 0)
    got = evaluate(panel, {"r": "Ret($close, 2)"}, "2020-03-02", "2020-04-01")["r"]
    ref = evaluate(panel, {"r": "$close/Ref($close, 2)-1"}, "2020-03-02", "2020-04-01")["r"]
    np.testing.assert_array_equal(got.to_numpy(), ref.to_numpy())


def test_non_local_operator_gets_operands_valid_on_every_row(panel: Panel, cleanup: None) -> None:
    """The engine computes a local operator's operands only around the market's rows; an operator
    that is not declared local reads whole columns, so its operands are computed everywhere."""

    @register_operator("Last", "x")  # the column's last stored value, on every row
    def last(ctx, x):  # type: ignore[no-untyped-def]
        values = np.full(ctx.shape, np.nan)
        for j in range(ctx.shape[1]):
            ok = np.flatnonzero(~np.isnan(x[:, j]))
            values[:, j] = x[ok[-1], j] if len(ok) else np.nan
        return values

    got = evaluate(panel, {"x": "Last(Mean($close, 5))"}, "2020-03-02", "2020-04-01", "mkt")["x"]
    for sym, value in got.groupby(level="instrument"):
        j = panel.instruments.index(sym)
        close = pd.Series(panel["close"][panel.first[j] :, j], dtype=float)
        want = close.rolling(5, min_periods=1).mean().dropna().iloc[-1]
        np.testing.assert_allclose(value.to_numpy(), np.float32(want), rtol=1e-6)


def test_builtin_cannot_be_shadowed(cleanup: None) -> None:
    with pytest.raises(ValueError, match="'Mean' is built in"):
        register_operator("Mean", "xn")(lambda ctx, x, n: x)
    with pytest.warns(UserWarning, match="'Mean' is being replaced"):
        register_operator("Mean", "xn", overwrite=True)(lambda ctx, x, n: x)


def test_replacing_a_user_operator_warns(cleanup: None) -> None:
    register_operator("Twice", "x")(lambda ctx, x: 2 * x)
    with pytest.warns(UserWarning, match="'Twice' is being replaced"):
        register_operator("Twice", "x")(lambda ctx, x: x + x)


def test_bad_signature(cleanup: None) -> None:
    with pytest.raises(ValueError, match="letters must be among"):
        register_operator("Bad", "xz")


def test_operator_returning_its_operand_or_a_view_is_not_recycled(
    panel: Panel, cleanup: None
) -> None:
    # The engine writes results into temporaries it owns; an operand handed back (or a view of
    # one) must not be taken for a temporary, or the panel's own fields would be overwritten.
    register_operator("Same", "x")(lambda ctx, x: x)
    register_operator("View", "x")(lambda ctx, x: x[:, :])
    close = panel.fields["close"].copy()
    exprs = {
        "a": "Same($close) + 1",
        "b": "View($close) * 2",
        "c": "Mean(Same($close), 3) - Same(View($close))",
        "d": "$close",
    }
    got = evaluate(panel, exprs, "2020-03-02", "2020-04-01")
    np.testing.assert_array_equal(panel.fields["close"], close)
    ref = evaluate(
        panel,
        {"a": "$close + 1", "b": "$close * 2", "c": "Mean($close, 3) - $close", "d": "$close"},
        "2020-03-02",
        "2020-04-01",
    )
    np.testing.assert_array_equal(got.to_numpy(), ref.to_numpy())
