"""Qlib's operators (SPEC.md Appendix A) registered by name; rolling ones call ``kernels``.

Elementwise operators are numpy ufuncs on the arrays, so dtypes follow numpy exactly as they do in
Qlib (float32 stays float32; a comparison gives booleans where NaN compares False). Rolling
operators return float64, as pandas does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from alstm.features import kernels
from alstm.features.registry import mark_builtin, register_operator


@dataclass(frozen=True)
class EvalContext:
    """What an operator may know besides its arguments: the panel shape, each column's first
    existing row (``start``, ``int64 [N]``), where to get result arrays (``alloc``) and, for a
    ``local`` operator, the row of each column from which no result is needed (``stop``, ``int64
    [N]``; None: every row is)."""

    shape: tuple[int, int]
    start: np.ndarray
    alloc: Callable[[Any], np.ndarray] | None = None
    stop: np.ndarray | None = None

    def empty(self, dtype: Any = np.float64) -> np.ndarray:
        """An uninitialized ``[T, N]`` result array (a reused temporary when the engine has one)."""
        if self.alloc is None:
            return np.empty(self.shape, dtype=dtype)
        return self.alloc(dtype)


def _series(ctx: EvalContext, x: Any) -> np.ndarray:
    """A rolling operand as a float array (numbers broadcast, booleans become 0/1)."""
    if not isinstance(x, np.ndarray):
        return np.full(ctx.shape, x, dtype=np.float64)
    if x.dtype == np.bool_:
        return x.astype(np.float64)
    return x


def _ufunc(name: str, ufunc: np.ufunc, signature: str, *, in_place: bool = True) -> None:
    def op(ctx: EvalContext, *args: Any) -> Any:
        with np.errstate(all="ignore"):
            return ufunc(*args)

    op.__doc__ = f"numpy.{ufunc.__name__} elementwise"
    if in_place:  # same dtype in and out: the engine may write into a temporary operand
        op.ufunc = ufunc  # type: ignore[attr-defined]
    register_operator(name, signature, local=True)(op)


for _name, _uf in {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
    "Power": np.power, "Greater": np.maximum, "Less": np.minimum,
}.items():  # fmt: skip
    _ufunc(_name, _uf, "xx")
for _name, _uf in {
    "Gt": np.greater, "Ge": np.greater_equal, "Lt": np.less, "Le": np.less_equal,
    "Eq": np.equal, "Ne": np.not_equal, "And": np.bitwise_and, "Or": np.bitwise_or,
}.items():  # fmt: skip
    _ufunc(_name, _uf, "xx", in_place=False)  # booleans out
_ufunc("Abs", np.abs, "x")
_ufunc("Log", np.log, "x")
_ufunc("Not", np.bitwise_not, "x", in_place=False)


@register_operator("Sign", "x", local=True)
def sign(ctx: EvalContext, x: Any) -> Any:
    """Sign of x cast to float32 (Qlib casts first so booleans work)."""
    return np.sign(np.asarray(x, dtype=np.float32))


@register_operator("If", "xxx", local=True)
def if_(ctx: EvalContext, cond: Any, x: Any, y: Any) -> Any:
    """numpy.where(cond, x, y)."""
    return np.where(cond, x, y)


@register_operator("Ref", "xk", local=True)
def ref(ctx: EvalContext, x: Any, n: int) -> Any:
    """x shifted by n rows (n > 0 past, n < 0 future, 0 = the first loaded value)."""
    if not isinstance(x, np.ndarray):
        return x
    out = ctx.empty(x.dtype) if x.dtype in (np.float32, np.float64) else None
    return kernels.shift(x, n, ctx.start, out=out, stop=ctx.stop)


@register_operator("Delta", "xn", path_dependent=True, local=True)
def delta(ctx: EvalContext, x: Any, n: int) -> Any:
    """x − Ref(x, n). Qlib extends the window by n − 1 rows only, so the first row reads NaN."""
    x = _series(ctx, x)
    with np.errstate(all="ignore"):
        return x - kernels.shift(x, n, ctx.start, stop=ctx.stop)


def _rolling(
    name: str,
    kernel: Any,
    *,
    min_window: int = 0,
    alpha: bool = True,
    path_dependent: bool = False,
    batch: Callable[..., list[np.ndarray]] | None = None,
) -> None:
    def op(ctx: EvalContext, x: Any, n: int | float) -> np.ndarray:
        if isinstance(n, float):
            return kernels.ewm_mean(_series(ctx, x), n, ctx.start, out=ctx.empty(), stop=ctx.stop)
        return kernel(_series(ctx, x), n, ctx.start, out=ctx.empty(), stop=ctx.stop)

    op.__doc__ = f"{kernel.__doc__}"
    register_operator(
        name,
        "xa" if alpha else "xn",
        min_window=min_window,
        path_dependent=path_dependent,
        local=True,
        batch=batch,
    )(op)


def _batch(many: Callable[..., tuple[np.ndarray, ...]], stat: Callable[[str, tuple], Any]) -> Any:
    """A batch function computing several statistics of one series and window with ``many``
    (``stat`` names each member's statistic as ``many`` expects it)."""

    def batch(ctx: EvalContext, x: Any, n: int, members: list[tuple[str, tuple]]) -> list:
        stats = tuple(stat(name, params) for name, params in members)
        out = tuple(ctx.empty() for _ in stats)
        return list(many(_series(ctx, x), n, stats, ctx.start, out=out, stop=ctx.stop))

    return batch


# Each _batch(...) is a batch family of its own: Max/IdxMax and Min/IdxMin must not be grouped
# together (one pass looks for one sign of extreme).
_regression = _batch(kernels.rolling_regression, lambda name, _: name.lower())
_highest = _batch(kernels.rolling_extremes, lambda name, _: name.lower())
_lowest = _batch(kernels.rolling_extremes, lambda name, _: name.lower())
_quantiles = _batch(kernels.rolling_quantiles, lambda _, q: float(q[0]) if q else -1.0)

# Qlib's plain Rolling operators turn a float window 0 < N < 1 into an EWM mean with alpha = N.
_rolling("Sum", kernels.rolling_sum)
_rolling("Mean", kernels.rolling_mean)
# pandas' online variance carries rounding residue from the first loaded row onwards; on flat
# windows that residue is the whole result (e.g. WVMA5 = residue / 1e-12), so Std and Var start
# exactly where Qlib starts loading.
_rolling("Std", kernels.rolling_std, path_dependent=True)
_rolling("Var", kernels.rolling_var, path_dependent=True)
_rolling("Max", kernels.rolling_max, batch=_highest)
_rolling("Min", kernels.rolling_min, batch=_lowest)
_rolling("Med", kernels.rolling_median, batch=_quantiles)
_rolling("Count", kernels.rolling_count)
_rolling("Skew", kernels.rolling_skew, min_window=3)
_rolling("Kurt", kernels.rolling_kurt, min_window=4)
_rolling("Mad", kernels.rolling_mad, alpha=False)
_rolling("Rank", kernels.rolling_rank, alpha=False)
_rolling("IdxMax", kernels.rolling_idxmax, alpha=False, batch=_highest)
_rolling("IdxMin", kernels.rolling_idxmin, alpha=False, batch=_lowest)
_rolling("Slope", kernels.rolling_slope, alpha=False, batch=_regression)
_rolling("Rsquare", kernels.rolling_rsquare, alpha=False, batch=_regression)
_rolling("Resi", kernels.rolling_resi, alpha=False, batch=_regression)
_rolling("WMA", kernels.rolling_wma, alpha=False, batch=_regression)


@register_operator("EMA", "xa", path_dependent=True, expanding=False, local=True)
def ema(ctx: EvalContext, x: Any, n: int | float) -> np.ndarray:
    """pandas ewm(span=n) mean for n ≥ 1, ewm(alpha=n) for 0 < n < 1; from the loaded start."""
    return kernels.ewm_mean(_series(ctx, x), n, ctx.start, out=ctx.empty(), stop=ctx.stop)


@register_operator("Quantile", "xnq", local=True, batch=_quantiles)
def quantile(ctx: EvalContext, x: Any, n: int, q: float) -> np.ndarray:
    """pandas rolling(n, min_periods=1).quantile(q), linear interpolation."""
    return kernels.rolling_quantile(
        _series(ctx, x), n, float(q), ctx.start, out=ctx.empty(), stop=ctx.stop
    )


@register_operator("Corr", "xxn", local=True)
def corr(ctx: EvalContext, x: Any, y: Any, n: int) -> np.ndarray:
    """pandas rolling corr, NaN where either rolling std is within 2e-5 of 0."""
    return kernels.rolling_corr(
        _series(ctx, x), _series(ctx, y), n, ctx.start, out=ctx.empty(), stop=ctx.stop
    )


@register_operator("Cov", "xxn", local=True)
def cov(ctx: EvalContext, x: Any, y: Any, n: int) -> np.ndarray:
    """pandas rolling cov (ddof=1) over rows where both are present."""
    return kernels.rolling_cov(
        _series(ctx, x), _series(ctx, y), n, ctx.start, out=ctx.empty(), stop=ctx.stop
    )


mark_builtin()
