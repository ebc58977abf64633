"""Each rolling kernel against the pandas expression it reproduces, on random market-like data."""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
import pandas as pd
import pytest

from alstm.features import kernels as K

T, N = 300, 8
WINDOWS = [1, 2, 5, 20, 60, 0]
MASK_ATOL = 2e-5


def _market_panel(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 [T, N] series with large levels, ties, flat stretches, NaN runs and late starts.

    Columns: prices ~1e4 (two), prices on a coarse tick (ties), prices ~5e5, volumes ~1e9, small
    returns ~1e-3, a series whose rolling std sits around Qlib's 2e-5 mask, and a column that never
    exists. Rows before each column's start hold garbage that the kernels must ignore.
    """
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0.0, 0.02, (T, N)), axis=0)
    x = 1e4 * np.exp(walk)
    x[:, 2] = np.round(x[:, 2] / 50.0) * 50.0
    x[:, 3] = 5e5 * np.exp(walk[:, 3])
    x[:, 4] = np.round(np.exp(rng.normal(20.7, 0.8, T)), -3)
    x[:, 5] = rng.normal(0.0, 1e-3, T)
    x[:, 6] = 1.0 + np.round(rng.normal(0.0, 2e-5, T), 5)
    for j in range(N - 1):
        for _ in range(4):  # flat stretches (limit days, stale prices)
            a = rng.integers(0, T - 10)
            x[a : a + rng.integers(3, 70), j] = x[a, j]
        for _ in range(3):  # suspensions, one of them longer than the largest window
            a = rng.integers(0, T - 5)
            x[a : a + rng.choice([1, 3, 8, 70]), j] = np.nan
    x[[40, 41, 200], 1] = [np.inf, -np.inf, np.inf]  # pandas reads ±inf as NaN
    start = np.array([0, 0, 37, 0, 120, 5, 0, T])
    for j, s0 in enumerate(start):
        x[:s0, j] = rng.normal(0.0, 1e6, min(s0, T))
    return x.astype(np.float32), start


X, START = _market_panel(0)
Y, _ = _market_panel(1)


def _reference(x: np.ndarray, start: np.ndarray, f: Callable[[pd.Series], pd.Series]) -> np.ndarray:
    """f applied to each column's series from its start, NaN before."""
    out = np.full(x.shape, np.nan)
    for j, s0 in enumerate(start):
        if s0 < x.shape[0]:
            out[s0:, j] = f(pd.Series(x[s0:, j].astype(np.float64))).to_numpy()
    return out


def _roll(s: pd.Series, d: int):
    return s.rolling(d, min_periods=1) if d else s.expanding(min_periods=1)


def _assert_same(got: np.ndarray, want: np.ndarray, rtol: float = 1e-9) -> None:
    assert got.dtype == np.float64
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg="NaN patterns differ")
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-9)


def _std_mask(s: pd.Series, d: int) -> np.ndarray:
    return np.isclose(_roll(s, d).std(), 0.0, atol=MASK_ATOL)


# ---- pandas references for the operators pandas has no rolling method for (Qlib's own code) ----


def _line(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Positions, values and means of the non-NaN slots of a window (positions 1 … len(a))."""
    pos = np.arange(1.0, len(a) + 1.0)
    ok = ~np.isnan(a)
    return pos[ok], a[ok], pos[ok].mean(), a[ok].mean()


def _slope(a: np.ndarray) -> float:
    p, y, pm, ym = _line(a)
    return np.nan if len(y) < 2 else ((p - pm) * (y - ym)).sum() / ((p - pm) ** 2).sum()


def _resi(a: np.ndarray) -> float:
    _, y, pm, ym = _line(a)
    return a[-1] - (ym + _slope(a) * (len(a) - pm)) if len(y) >= 2 else np.nan


def _rsquare(a: np.ndarray) -> float:
    p, y, _, ym = _line(a)
    if len(y) < 2 or np.all(y == ym):
        return np.nan
    return np.corrcoef(p, y)[0, 1] ** 2


def _wma(a: np.ndarray) -> float:
    w = np.arange(1.0, len(a) + 1.0)
    return np.nanmean(w / w.sum() * a)


def _mad(a: np.ndarray) -> float:
    b = a[~np.isnan(a)]
    return np.mean(np.abs(b - b.mean()))


def _masked_rsquare(s: pd.Series, d: int) -> pd.Series:
    return _roll(s, d).apply(_rsquare, raw=True).mask(_std_mask(s, d))


ROLLING = {
    "sum": (K.rolling_sum, lambda s, d: _roll(s, d).sum()),
    "mean": (K.rolling_mean, lambda s, d: _roll(s, d).mean()),
    "std": (K.rolling_std, lambda s, d: _roll(s, d).std()),
    "var": (K.rolling_var, lambda s, d: _roll(s, d).var()),
    "max": (K.rolling_max, lambda s, d: _roll(s, d).max()),
    "min": (K.rolling_min, lambda s, d: _roll(s, d).min()),
    "median": (K.rolling_median, lambda s, d: _roll(s, d).median()),
    "count": (K.rolling_count, lambda s, d: _roll(s, d).count()),
    "skew": (K.rolling_skew, lambda s, d: _roll(s, d).skew()),
    "kurt": (K.rolling_kurt, lambda s, d: _roll(s, d).kurt()),
    "rank": (K.rolling_rank, lambda s, d: _roll(s, d).rank(method="average", pct=True)),
    "idxmax": (
        K.rolling_idxmax,
        lambda s, d: _roll(s, d).apply(lambda a: a.argmax() + 1, raw=True),
    ),
    "idxmin": (
        K.rolling_idxmin,
        lambda s, d: _roll(s, d).apply(lambda a: a.argmin() + 1, raw=True),
    ),
    "mad": (K.rolling_mad, lambda s, d: _roll(s, d).apply(_mad, raw=True)),
    "wma": (K.rolling_wma, lambda s, d: _roll(s, d).apply(_wma, raw=True)),
    "slope": (K.rolling_slope, lambda s, d: _roll(s, d).apply(_slope, raw=True)),
    "resi": (K.rolling_resi, lambda s, d: _roll(s, d).apply(_resi, raw=True)),
    "rsquare": (K.rolling_rsquare, _masked_rsquare),
}


# pandas' own kurt is off by up to ~1.3e-9 relative on near-flat windows (checked against exact
# rational arithmetic, which the kernel matches); everything else agrees to 1e-9.
RTOL = {"kurt": 1e-8}


@pytest.mark.parametrize("d", WINDOWS)
@pytest.mark.parametrize("name", sorted(ROLLING))
def test_rolling_matches_pandas(name: str, d: int) -> None:
    kernel, pandas_op = ROLLING[name]
    want = _reference(X, START, lambda s: pandas_op(s, d))
    _assert_same(kernel(X, d, START), want, rtol=RTOL.get(name, 1e-9))


@pytest.mark.parametrize("d", WINDOWS)
@pytest.mark.parametrize("name", ["std", "var"])
def test_var_std_are_bit_identical_to_pandas(name: str, d: int) -> None:
    """They replay pandas' roll_var, rounding residue included (it decides Qlib's 2e-5 masks)."""
    kernel, pandas_op = ROLLING[name]
    np.testing.assert_array_equal(
        kernel(X, d, START), _reference(X, START, lambda s: pandas_op(s, d))
    )


@pytest.mark.parametrize("d", WINDOWS)
@pytest.mark.parametrize("q", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_rolling_quantile_matches_pandas(q: float, d: int) -> None:
    want = _reference(X, START, lambda s: _roll(s, d).quantile(q))
    _assert_same(K.rolling_quantile(X, d, q, START), want)


def _pair_reference(d: int, op: str) -> np.ndarray:
    out = np.full(X.shape, np.nan)
    for j, s0 in enumerate(START):
        if s0 < T:
            a, b = (pd.Series(z[s0:, j].astype(np.float64)) for z in (X, Y))
            res = getattr(_roll(a, d), op)(b)
            if op == "corr":
                res = res.mask(_std_mask(a, d) | _std_mask(b, d))
            out[s0:, j] = res.to_numpy()
    return out


@pytest.mark.parametrize("d", WINDOWS)
@pytest.mark.parametrize("op", ["corr", "cov"])
def test_rolling_corr_cov_match_pandas(op: str, d: int) -> None:
    kernel = K.rolling_corr if op == "corr" else K.rolling_cov
    _assert_same(kernel(X, Y, d, START), _pair_reference(d, op))


def test_corr_of_a_series_with_itself_is_one_or_masked() -> None:
    got = K.rolling_corr(X, X, 20, START)
    std = K.rolling_std(X, 20, START)
    ok = ~np.isnan(got)
    np.testing.assert_allclose(got[ok], 1.0, rtol=1e-12)
    assert np.all(np.isnan(got[np.abs(std) <= MASK_ATOL]))


@pytest.mark.parametrize("n", [1, 2, 5, 10, 0.5, 0.1])
def test_ewm_mean_matches_pandas(n: float) -> None:
    kw = {"span": n} if n >= 1 else {"alpha": n}
    want = _reference(X, START, lambda s: s.ewm(min_periods=1, **kw).mean())
    _assert_same(K.ewm_mean(X, n, START), want)


@pytest.mark.parametrize("n", [1, 2, 5, -1, -2, 0])
def test_shift_matches_pandas_and_keeps_dtype(n: int) -> None:
    got = K.shift(X, n, START)
    want = np.full(X.shape, np.nan, dtype=X.dtype)
    for j, s0 in enumerate(START):
        if s0 < T:
            s = pd.Series(X[s0:, j])
            want[s0:, j] = s.shift(n) if n else s.iloc[0]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_flat_window_after_volatile_data() -> None:
    """A flat stretch after volatile prices (~1e4) and volumes (~1.5e9): the kernels' own sums give
    an exact zero spread; Std replays pandas, whose Welford residue is 0.27 on the flat volumes."""
    rng = np.random.default_rng(3)
    x = np.c_[1e4 + np.cumsum(rng.standard_normal(200)), 1.5e9 + 1e6 * rng.standard_normal(200)]
    x[100:] = [10012.5, 1.5e9]
    x = x.astype(np.float32)
    start = np.zeros(2, dtype=np.int64)
    flat = slice(160, None)
    for d in (5, 20, 60):
        np.testing.assert_array_equal(K.rolling_mean(x, d, start)[flat], x[flat])
        np.testing.assert_array_equal(K.rolling_cov(x, x, d, start)[flat], 0.0)
        for kernel in (K.rolling_skew, K.rolling_kurt, K.rolling_rsquare):
            assert np.all(np.isnan(kernel(x, d, start)[flat]))
        assert np.all(np.isnan(K.rolling_corr(x, x[:, ::-1], d, start)[flat]))
        want = _reference(x, start, lambda s, d=d: s.rolling(d, min_periods=1).std())
        np.testing.assert_array_equal(K.rolling_std(x, d, start), want)
    assert np.all(K.rolling_std(x, 20, start)[flat, 1] > 0.1)  # pandas' residue, reproduced


def test_float32_and_float64_inputs_agree() -> None:
    x64 = X.astype(np.float64)
    for kernel, _ in ROLLING.values():
        np.testing.assert_array_equal(kernel(X, 20, START), kernel(x64, 20, START))


def test_window_longer_than_the_series_is_expanding() -> None:
    for kernel, _ in ROLLING.values():
        np.testing.assert_array_equal(kernel(X, T + 50, START), kernel(X, 0, START))


def test_results_do_not_depend_on_the_thread_count() -> None:
    """Columns are split into ranges per thread; each column's result must not depend on it."""
    wide, start = np.tile(X, (1, 5)), np.tile(START, 5)
    threads = numba.get_num_threads()
    results = {}
    for n in sorted({1, threads}):
        numba.set_num_threads(n)
        try:
            results[n] = [kernel(wide, 20, start) for kernel, _ in ROLLING.values()]
        finally:
            numba.set_num_threads(threads)
    for got, want in zip(results[threads], results[1], strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(results[1][0][:, N : 2 * N], results[1][0][:, :N])


@pytest.mark.parametrize("d", [1, 5, 20, 0])
def test_stop_keeps_the_needed_rows_exact(d: int) -> None:
    """With ``stop``, rows start..stop-1 equal the full result, whatever the range partition and
    whatever the unneeded rows of the operand hold."""
    wide, start = np.tile(X, (1, 5)), np.tile(START, 5)
    stop = np.random.default_rng(4).integers(0, T + 1, wide.shape[1])
    noisy = wide.copy()
    rows = np.arange(T)[:, None]
    noisy[rows >= stop] = 1e30  # garbage where nothing is needed
    needed = (rows >= start) & (rows < stop)
    kernels = [kernel for kernel, _ in ROLLING.values()] + [
        lambda x, d, s, **kw: K.rolling_corr(x, np.sqrt(np.abs(x) + 1.0), d, s, **kw),
        lambda x, d, s, **kw: K.rolling_quantile(x, d, 0.2, s, **kw),
    ]
    for kernel in kernels:
        want = kernel(wide, d, start)
        got = kernel(noisy, d, start, stop=stop)
        np.testing.assert_array_equal(got[needed], want[needed], err_msg=str(kernel))
    for n in (3, -2):  # a shift reads rows ahead: it is exact up to stop - max(-n, 0)
        ahead = np.clip(stop - max(-n, 0), 0, None)
        exact = (rows >= start) & (rows < ahead)
        got = K.shift(np.where(rows < stop, wide, np.float32(1e30)), n, start, stop=stop)
        np.testing.assert_array_equal(got[exact], K.shift(wide, n, start)[exact])
    with pytest.raises(ValueError, match="stop"):
        K.rolling_mean(X, 5, START, stop=np.zeros(N - 1, np.int64))


@pytest.mark.parametrize("d", [1, 5, 20, 0])
def test_several_statistics_in_one_pass_equal_each_alone(d: int) -> None:
    groups = [
        (K.rolling_regression, ("slope", "rsquare", "resi", "wma"), ROLLING),
        (K.rolling_extremes, ("max", "idxmax"), ROLLING),
        (K.rolling_extremes, ("idxmin", "min"), ROLLING),
    ]
    for many, stats, single in groups:
        for got, stat in zip(many(X, d, stats, START), stats, strict=True):
            np.testing.assert_array_equal(got, single[stat][0](X, d, START), err_msg=stat)
    qs = (0.8, 0.2, -1.0)
    got = K.rolling_quantiles(X, d, qs, START)
    np.testing.assert_array_equal(got[0], K.rolling_quantile(X, d, 0.8, START))
    np.testing.assert_array_equal(got[1], K.rolling_quantile(X, d, 0.2, START))
    np.testing.assert_array_equal(got[2], K.rolling_median(X, d, START))


def test_several_statistics_reject_bad_names() -> None:
    with pytest.raises(ValueError, match="statistics must be among"):
        K.rolling_regression(X, 5, ("slope", "beta"), START)
    with pytest.raises(ValueError, match="all be of max or all of min"):
        K.rolling_extremes(X, 5, ("max", "idxmin"), START)
    with pytest.raises(ValueError, match="quantiles must be in"):
        K.rolling_quantiles(X, 5, (0.5, 2.0), START)


def test_boolean_input_is_read_as_zero_one() -> None:
    up = X > K.shift(X, 1, START)  # NaN compares False: Qlib's Mean(C > Ref(C, 1), d) counts it 0
    want = _reference(up.astype(np.float64), START, lambda s: s.rolling(5, min_periods=1).mean())
    _assert_same(K.rolling_mean(up, 5, START), want)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="window"):
        K.rolling_mean(X, -1, START)
    with pytest.raises(ValueError, match="start"):
        K.rolling_mean(X, 5, START[:-1])
    with pytest.raises(ValueError, match="start"):
        K.rolling_mean(X, 5, np.full(N, -1))
    with pytest.raises(ValueError, match="ewm_mean"):
        K.ewm_mean(X, 0, START)
    with pytest.raises(ValueError, match="quantile"):
        K.rolling_quantile(X, 5, 1.5, START)


def test_out_receives_the_result_and_is_checked() -> None:
    x, start = _market_panel()
    out = np.full(x.shape, 7.0)
    got = K.rolling_mean(x, 5, start, out=out)
    assert got is out
    np.testing.assert_array_equal(out, K.rolling_mean(x, 5, start))
    with pytest.raises(ValueError, match="C-contiguous float64"):
        K.rolling_mean(x, 5, start, out=np.empty(x.shape, dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        K.rolling_corr(x, x, 5, start, out=np.empty((2, 2)))


def test_gather_equals_take_then_astype() -> None:
    rng = np.random.default_rng(3)
    src = rng.normal(0, 1e39, 5000)  # beyond float32's range: casts to ±inf, as astype does
    src[::7] = np.nan
    flat = np.sort(rng.choice(src.size, 3000, replace=False)).astype(np.int64)
    out = np.empty(3000, dtype=np.float32)
    with np.errstate(over="ignore"):
        want = src[flat].astype(np.float32)
    np.testing.assert_array_equal(K.gather(src, flat, out), want)
    pos = rng.permutation(3000).astype(np.int32)  # out[pos] = src[flat]
    got = K.gather(src, flat.astype(np.int32), np.empty(3000, np.float32), pos)
    np.testing.assert_array_equal(got[pos], want)
    with pytest.raises(ValueError, match="int32 or int64"):
        K.gather(src, flat.astype(np.float64), out)
    with pytest.raises(ValueError, match="as many indices"):
        K.gather(src, flat, out, pos[:10])


@pytest.mark.parametrize("ufunc", [np.add, np.divide, np.log, np.maximum])
def test_apply_ufunc_equals_one_whole_array_call(ufunc: np.ufunc) -> None:
    x, _ = _market_panel()
    args = [x, 0.5] if ufunc.nin == 2 else [x - 0.5]
    out = np.empty(x.shape, dtype=np.result_type(*args))
    with np.errstate(all="ignore"):
        want = ufunc(*args)
    np.testing.assert_array_equal(K.apply_ufunc(ufunc, args, out), want)
    with pytest.raises(ValueError, match="shape"):
        K.apply_ufunc(ufunc, [x[:3], *args[1:]], out)
