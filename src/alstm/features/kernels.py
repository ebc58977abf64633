"""Rolling-window kernels of Qlib's expression operators: pure arrays, compiled with numba.

Contract shared by every public function:

- ``x`` is a panel ``[T, N]`` (time rows, instrument columns) of float32 or float64 (booleans and
  integers are accepted). Results are C-contiguous float64 ``[T, N]``; only :func:`shift` keeps the
  input dtype. ``out=`` takes a preallocated result array, as numpy's ufuncs do (the factor engine
  reuses freed temporaries: fresh [T, N] arrays cost more in page faults than most kernels).
- ``start`` is ``int64 [N]``: column ``j``'s series exists from row ``start[j] >= 0`` on
  (``start[j] >= T``: the column never exists). Rows before it do not exist: the output is NaN there
  and no window reaches before it. NaN values from ``start[j]`` on (suspended days) are rows of the
  series and occupy window slots.
- ``stop=`` (optional, ``int64 [N]``) says that only rows before ``stop[j]`` of column ``j`` are
  needed. The result is then exact on rows ``start[j] .. stop[j] - 1`` only, computed as if the
  series ended at some row at or after ``stop[j]``; every other row is left unspecified (not even
  NaN). The factor engine passes it so that each column is computed only where its output rows
  need it.
- A window ``d >= 1`` at row ``t`` covers rows ``max(start[j], t - d + 1) .. t``: partial windows at
  the start of a series, like pandas ``min_periods=1``. ``d == 0`` is the expanding window from
  ``start[j]``. A window without any non-NaN value gives NaN unless stated otherwise.
- Like pandas rolling windows, the kernels read ``±inf`` as NaN (only :func:`rolling_count` counts
  it as an observation, as pandas does).

Each function equals, column by column, the pandas expression in its docstring evaluated on
``s = pd.Series(x[start[j]:, j])`` with ``r = s.rolling(d, min_periods=1)`` (``d == 0``:
``r = s.expanding(min_periods=1)``), placed back at rows ``start[j]:``.

How it is computed:

- The columns are split into ranges that run in parallel on a thread pool (the compiled kernels
  release the GIL; ``numba.get_num_threads()`` threads). A range runs only on the rows from its
  earliest start to its latest stop. A kernel walks time row by row over its
  range, reading each row contiguously, and keeps a small state per column; the columns are
  independent dependency chains that the CPU overlaps.
- ``Var``/``Std`` (and the std behind the ``Rsquare``/``Corr`` masks) replay pandas' ``roll_var``
  step by step, so they are bit-identical to pandas, including its rounding residue on a flat
  window that follows volatile data (a small positive std instead of 0), which decides Qlib's
  ``|std| <= 2e-5`` masks.
- Sum and mean keep compensated (TwoSum) running sums. Skew, kurt, slope/rsquare/resi/wma and
  cov/corr keep compensated sums of powers of deviations from a reference value, the window mean at
  the last exact recomputation; a window is recomputed when its centred sum of squares has lost
  more than 4 bits to cancellation, so a flat window has an exactly zero spread. O(1) per row.
- Max/min and their positions: van Herk / Gil-Werman, O(1) per row. Median and quantile keep each
  window's values sorted (O(d) per row, small constant); rank and mad scan the window, O(d) per
  row (O(T) for expanding windows).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np

__all__ = [
    "apply_ufunc",
    "ewm_mean",
    "gather",
    "rolling_corr",
    "rolling_count",
    "rolling_cov",
    "rolling_extremes",
    "rolling_idxmax",
    "rolling_idxmin",
    "rolling_kurt",
    "rolling_mad",
    "rolling_max",
    "rolling_mean",
    "rolling_median",
    "rolling_min",
    "rolling_quantile",
    "rolling_quantiles",
    "rolling_rank",
    "rolling_regression",
    "rolling_resi",
    "rolling_rsquare",
    "rolling_skew",
    "rolling_slope",
    "rolling_std",
    "rolling_sum",
    "rolling_var",
    "rolling_wma",
    "shift",
]

_helper = numba.njit(cache=True, error_model="numpy")
_kernel = numba.njit(cache=True, error_model="numpy", nogil=True)

# The columns are split into this many ranges per thread (several, so that a slow thread is
# balanced by the others); each range is one kernel call on a thread pool.
_RANGES_PER_THREAD = 4
# Qlib sets Rsquare and Corr to NaN where a rolling std is np.isclose(std, 0, atol=2e-5).
_STD_MASK_ATOL = 2e-5
# Recompute a window exactly once the cancellation in s2 - s1²/n costs more than 4 bits.
_CANCELLATION = 16.0
# pandas' roll_var recomputes a window once a step shrinks its sum of squares below this fraction.
_PANDAS_INV_COND_TOL = np.finfo(np.float64).eps * 1e3

# Statistic codes of the kernels that serve several public functions.
_SKEW, _KURT = 0, 1
_SLOPE, _RSQUARE, _RESI, _WMA = 0, 1, 2, 3
_COV, _CORR = 0, 1
_MAX, _MIN, _IDXMAX, _IDXMIN = 0, 1, 2, 3


# --------------------------------------------------------------------------------------------------
# Arguments


def _panel(x: np.ndarray) -> np.ndarray:
    """x as a C-contiguous float32 or float64 [T, N] array (booleans become float32 0/1)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a [T, N] array, got shape {x.shape}")
    if x.dtype == np.bool_:
        x = x.astype(np.float32)
    elif x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return np.ascontiguousarray(x)


def _starts(start: np.ndarray, x: np.ndarray) -> np.ndarray:
    """start as a contiguous int64 [N] array, checked against x [T, N]."""
    start = np.ascontiguousarray(start, dtype=np.int64)
    if start.shape != (x.shape[1],):
        raise ValueError(f"start has shape {start.shape}, expected ({x.shape[1]},)")
    if start.size and start.min() < 0:
        raise ValueError("start must be >= 0 (use T for a column that never exists)")
    return start


def _stops(stop: np.ndarray | None, x: np.ndarray) -> np.ndarray | None:
    """stop as a contiguous int64 [N] array checked against x [T, N], or None."""
    if stop is None:
        return None
    stop = np.ascontiguousarray(stop, dtype=np.int64)
    if stop.shape != (x.shape[1],):
        raise ValueError(f"stop has shape {stop.shape}, expected ({x.shape[1]},)")
    return stop


def _window(d: int) -> int:
    """A checked window length (0 = expanding)."""
    if d < 0:
        raise ValueError(f"window must be >= 0 (0 = expanding), got {d}")
    return int(d)


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """The threads that run kernels on column ranges."""
    return ThreadPoolExecutor(numba.config.NUMBA_NUM_THREADS, thread_name_prefix="alstm-kernels")


def _run(
    kernel: Callable[..., None],
    inputs: tuple[np.ndarray, ...],
    param: Any,
    start: np.ndarray,
    *rest: Any,
    stop: np.ndarray | None = None,
    dtype: Any = np.float64,
    out: np.ndarray | tuple[np.ndarray, ...] | None = None,
) -> Any:
    """``out`` (a new [T, N] array when None) filled by
    ``kernel(*inputs, param, start, *rest, out, j0, j1)`` over column ranges j0:j1, run in
    parallel on ``numba.get_num_threads()`` threads. A tuple ``out`` (several results of one
    pass) reaches the kernel as a tuple of row slices.

    Each range runs on the rows from its earliest ``start`` to its latest ``stop`` only (row
    slices of the arrays, ``start`` shifted to match): rows before every start of a range are NaN
    anyway, and rows from every stop on are not needed.
    """
    x = inputs[0]
    T = x.shape[0]
    start, stop = _starts(start, x), _stops(stop, x)
    outs = tuple(_result(o, x.shape, dtype) for o in (out if isinstance(out, tuple) else (out,)))

    def call(a: int, b: int) -> None:
        r0 = min(int(start[a:b].min()), T)
        r1 = T if stop is None else max(min(int(stop[a:b].max()), T), r0)
        if stop is None:
            for o in outs:
                o[:r0, a:b] = np.nan
        if r1 > r0:
            sliced = tuple(v[r0:r1] for v in inputs)
            dst = tuple(o[r0:r1] for o in outs)
            kernel(
                *sliced, param, start - r0, *rest, dst if isinstance(out, tuple) else dst[0], a, b
            )

    _in_ranges(call, x.shape[1])
    return out if isinstance(out, tuple) else outs[0]


def _result(out: np.ndarray | None, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """``out`` checked against the result's shape and dtype, or a new array."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != shape or out.dtype != np.dtype(dtype) or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be a C-contiguous {np.dtype(dtype)} array of shape {shape}, "
            f"got {out.dtype} {out.shape}"
        )
    return out


def _in_ranges(
    call: Callable[[int, int], Any], n: int, per_thread: int = _RANGES_PER_THREAD
) -> None:
    """``call(a, b)`` over ranges a:b covering 0:n, in parallel on the kernels' threads (the
    callee must release the GIL: a compiled kernel or a numpy ufunc); ``per_thread`` ranges per
    thread (one suits work spread evenly over the items)."""
    ranges = min(n, per_thread * numba.get_num_threads())
    if ranges <= 1:
        call(0, n)
        return
    edges = np.linspace(0, n, ranges + 1).round().astype(np.int64).tolist()
    tasks = [_pool().submit(call, a, b) for a, b in itertools.pairwise(edges)]
    for task in tasks:
        task.result()


# --------------------------------------------------------------------------------------------------
# Shared helpers. A kernel keeps the state of each column of its range in a column of a small
# field-major array. Per row and column it loads the state into a tuple, advances it with tuple
# functions that avoid data-dependent branches (a NaN input selects "no change"), stores it back
# and writes the result; the columns are independent, so the CPU overlaps their dependency chains.
# Columns whose window must be recomputed from scratch (rare) are flagged and redone after that.


@_helper
def _finite(v):
    """v as float64, with ±inf read as NaN (as pandas rolling windows do)."""
    v = np.float64(v)
    return v if abs(v) < np.inf else np.nan


@_helper
def _entering(v, t, s0):
    """The value v = x[t] as it enters the window of a series starting at row s0 (NaN before)."""
    return _finite(v) if t >= s0 else np.nan


@_helper
def _leaving(v, t, s0, d):
    """The value v = x[t - d] as it leaves a window moving to row t; NaN when no row leaves."""
    return _finite(v) if d > 0 and t - d >= s0 else np.nan


@_helper
def _window_start(t, s0, d):
    """First row of the window ending at row t of a series that starts at row s0."""
    return s0 if d == 0 else max(s0, t - d + 1)


@_helper
def _anchored_mean(x, j, lo, hi):
    """Mean of the non-NaN values of x[lo:hi, j] (0 if none); exact when they are all equal."""
    n = 0
    anchor = 0.0
    acc = 0.0
    for r in range(lo, hi):
        v = _finite(x[r, j])
        if not np.isnan(v):
            if n == 0:
                anchor = v
            acc += v - anchor
            n += 1
    return anchor if n == 0 else anchor + acc / n


@_helper
def _two_sum(s, e, v):
    """The compensated sum s + e plus v (Knuth's TwoSum; the rounding error accumulates in e)."""
    t = s + v
    b = t - s
    return t, e + ((s - (t - b)) + (v - b))


@_helper
def _cancels(n, s1, s2):
    """True when s2 - s1²/n (n values, their sum s1 and sum of squares s2) lost more than 4 bits."""
    return (n > 0.0) & (_CANCELLATION * (n * s2 - s1 * s1) < n * s2)


@_helper
def _load6(state, k):
    """Column k of a 6-field state as a tuple."""
    return state[0, k], state[1, k], state[2, k], state[3, k], state[4, k], state[5, k]


@_helper
def _load10(state, k):
    """Column k of a 10-field state as a tuple."""
    return (*_load6(state, k), state[6, k], state[7, k], state[8, k], state[9, k])


@_helper
def _load13(state, k):
    """Column k of a 13-field state as a tuple."""
    return (*_load10(state, k), state[10, k], state[11, k], state[12, k])


# Explicit stores: a loop over a tuple's fields (runtime tuple indexing) is 2-3 times slower.


@_helper
def _store6(state, k, a):
    """Write the 6-tuple a into column k of the state."""
    state[0, k], state[1, k], state[2, k], state[3, k], state[4, k], state[5, k] = a


@_helper
def _store10(state, k, a):
    """Write the 10-tuple a into column k of the state."""
    _store6(state, k, a[:6])
    state[6, k], state[7, k], state[8, k], state[9, k] = a[6:]


@_helper
def _store13(state, k, a):
    """Write the 13-tuple a into column k of the state."""
    _store10(state, k, a[:10])
    state[10, k], state[11, k], state[12, k] = a[10:]


# --------------------------------------------------------------------------------------------------
# Sum, mean: compensated running sums


@_kernel
def _sum_nb(x, d, start, mean, out, j0, j1):
    """Rolling sum (or mean, if `mean`) of the columns j0:j1 of x [T, N], into out."""
    T = x.shape[0]
    starts = start[j0:j1]
    total = np.zeros(j1 - j0)
    error = np.zeros(j1 - j0)
    count = np.zeros(j1 - j0)
    for t in range(T):
        row, old, dst = x[t, j0:j1], x[max(t - d, 0), j0:j1], out[t, j0:j1]
        for k in range(j1 - j0):
            v = _entering(row[k], t, starts[k])
            u = _leaving(old[k], t, starts[k], d)
            total[k], error[k] = _two_sum(total[k], error[k], v if v == v else 0.0)
            total[k], error[k] = _two_sum(total[k], error[k], -u if u == u else 0.0)
            count[k] += (1.0 if v == v else 0.0) - (1.0 if u == u else 0.0)
            s = total[k] + error[k]
            dst[k] = np.nan if count[k] == 0.0 else s / count[k] if mean else s


def rolling_sum(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.sum()``."""
    x = _panel(x)
    return _run(_sum_nb, (x,), _window(d), start, False, stop=stop, out=out)


def rolling_mean(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.mean()``."""
    x = _panel(x)
    return _run(_sum_nb, (x,), _window(d), start, True, stop=stop, out=out)


def rolling_count(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.count()`` (0, not NaN, on an all-NaN window; ±inf counts as an observation)."""
    return rolling_sum(~np.isnan(np.asarray(x)), d, start, out=out, stop=stop)


# --------------------------------------------------------------------------------------------------
# Var, Std: pandas' roll_var replayed step by step. State w = (nobs, mean, ssqdm, compensation_add,
# compensation_remove, redo); redo is 1.0 once pandas would recompute the window from scratch.


@_helper
def _welford(w, val, sign):
    """pandas' add_var (sign=1) or remove_var (sign=-1) of val on w; NaN leaves w unchanged."""
    nobs, mean, ssq, c_add, c_remove, redo = w
    c = c_add if sign == 1 else c_remove
    n = nobs + sign
    prev_mean = mean - c
    y = val - c
    delta = y - mean
    c = delta + mean - y
    new_mean = mean + sign * delta / n
    new_ssq = ssq + sign * ((val - prev_mean) * (val - new_mean))
    new_redo = 1.0 if ssq * _PANDAS_INV_COND_TOL > new_ssq else redo  # numerically unstable
    if n == 0.0:  # the last value left: pandas zeroes the moments
        new_mean, new_ssq, new_redo, c = 0.0, 0.0, 0.0, c_remove
    if val != val:
        return w
    if sign == 1:
        return n, new_mean, new_ssq, c, c_remove, new_redo
    return n, new_mean, new_ssq, c_add, c, new_redo


@_helper
def _roll_var_next(w, v, u, fresh):
    """w moved to the next window (u leaves, v enters), flagged for recomputation on a fresh start
    (the first row, or d == 1) or when pandas found a step numerically unstable."""
    w = _welford(_welford(w, u, -1), v, 1)
    return w[0], w[1], w[2], w[3], w[4], 1.0 if fresh else w[5]


@_helper
def _roll_var_window(x, j, lo, hi):
    """pandas' roll_var state recomputed from the window x[lo:hi, j]."""
    w = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    for r in range(lo, hi):
        w = _welford(w, _finite(x[r, j]), 1)
    return w[0], w[1], w[2], w[3], w[4], 0.0


@_helper
def _roll_var(w, take_sqrt):
    """pandas' calc_var (ddof=1) of the state w, or its zsqrt if take_sqrt."""
    var = w[2] / (w[0] - 1.0) if w[0] > 1.0 else np.nan
    return np.sqrt(max(var, 0.0)) if take_sqrt and var == var else var


@_helper
def _std_masked(w):
    """Qlib's np.isclose(std, 0, atol=2e-5) on pandas' rolling std; a NaN std does not mask."""
    return _roll_var(w, True) <= _STD_MASK_ATOL


@_kernel
def _var_nb(x, d, start, take_sqrt, out, j0, j1):
    """pandas' rolling var (ddof=1), or std if take_sqrt, of the columns j0:j1 of x, into out."""
    T = x.shape[0]
    m = j1 - j0
    starts = start[j0:j1]
    state = np.zeros((6, m))
    for t in range(T):
        row, old, dst = x[t, j0:j1], x[max(t - d, 0), j0:j1], out[t, j0:j1]
        for k in range(m):
            s0 = starts[k]
            v, u = _entering(row[k], t, s0), _leaving(old[k], t, s0, d)
            w = _roll_var_next(_load6(state, k), v, u, (t == s0) | (d == 1))
            _store6(state, k, w)
            dst[k] = _roll_var(w, take_sqrt) if t >= s0 else np.nan
        for k in range(m):
            s0 = starts[k]
            if state[5, k] != 0.0 and t >= s0:
                w = _roll_var_window(x, j0 + k, _window_start(t, s0, d), t + 1)
                _store6(state, k, w)
                dst[k] = _roll_var(w, take_sqrt)


def rolling_var(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.var()`` (ddof=1: NaN with one observation), bit-identical to pandas."""
    x = _panel(x)
    return _run(_var_nb, (x,), _window(d), start, False, stop=stop, out=out)


def rolling_std(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.std()`` (ddof=1: NaN with one observation), bit-identical to pandas."""
    x = _panel(x)
    return _run(_var_nb, (x,), _window(d), start, True, stop=stop, out=out)


# --------------------------------------------------------------------------------------------------
# Skew, kurt: compensated power sums of the deviations from a reference value.
# State p = (n, ref, Σdev, err, Σdev², err, Σdev³, err, Σdev⁴, err).


@_helper
def _add_powers(p, v, sign):
    """p with the value v added (sign=1) or removed (sign=-1); NaN leaves p unchanged."""
    n, ref, s1, e1, s2, e2, s3, e3, s4, e4 = p
    present = v == v
    dev = v - ref if present else 0.0
    term = sign * dev if present else 0.0
    n += sign if present else 0.0
    s1, e1 = _two_sum(s1, e1, term)
    term *= dev
    s2, e2 = _two_sum(s2, e2, term)
    term *= dev
    s3, e3 = _two_sum(s3, e3, term)
    s4, e4 = _two_sum(s4, e4, term * dev)
    if n == 0.0:
        return 0.0, ref, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    return n, ref, s1, e1, s2, e2, s3, e3, s4, e4


@_helper
def _moments_window(x, j, lo, hi):
    """The power sums of the window x[lo:hi, j] about its mean."""
    p = (0.0, _anchored_mean(x, j, lo, hi), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    for r in range(lo, hi):
        p = _add_powers(p, _finite(x[r, j]), 1)
    return p


@_helper
def _moments_stat(p, stat):
    """Bias-corrected skew or kurt of the window summed in p (NaN if too short or constant)."""
    n = p[0]
    s1, s2, s3, s4 = p[2] + p[3], p[4] + p[5], p[6] + p[7], p[8] + p[9]
    a = s1 / n
    m2 = s2 - s1 * a
    m3 = s3 - 3.0 * a * s2 + 2.0 * n * a * a * a
    m4 = s4 - 4.0 * a * s3 + 6.0 * a * a * s2 - 3.0 * n * a * a * a * a
    c = (n - 2.0) * (n - 3.0)
    skew = n * np.sqrt(n - 1.0) / (n - 2.0) * m3 / (m2 * np.sqrt(m2))
    kurt = (n + 1.0) * n * (n - 1.0) / c * m4 / (m2 * m2) - 3.0 * (n - 1.0) ** 2 / c
    enough = n >= (3.0 if stat == _SKEW else 4.0)
    return (skew if stat == _SKEW else kurt) if enough & (m2 > 0.0) else np.nan


@_kernel
def _moments_nb(x, d, start, stat, out, j0, j1):
    """Rolling skew or kurt (stat code) of the columns j0:j1 of x [T, N], into out."""
    T = x.shape[0]
    m = j1 - j0
    starts = start[j0:j1]
    state = np.zeros((10, m))
    redo = np.zeros(m)
    for t in range(T):
        row, old, dst = x[t, j0:j1], x[max(t - d, 0), j0:j1], out[t, j0:j1]
        for k in range(m):
            s0 = starts[k]
            p = _add_powers(_load10(state, k), _leaving(old[k], t, s0, d), -1)
            p = _add_powers(p, _entering(row[k], t, s0), 1)
            _store10(state, k, p)
            redo[k] = 1.0 if _cancels(p[0], p[2] + p[3], p[4] + p[5]) else 0.0
            dst[k] = _moments_stat(p, stat) if t >= s0 else np.nan
        for k in range(m):
            if redo[k] != 0.0:
                p = _moments_window(x, j0 + k, _window_start(t, starts[k], d), t + 1)
                _store10(state, k, p)
                dst[k] = _moments_stat(p, stat)


def rolling_skew(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.skew()`` (NaN below 3 observations and on a constant window)."""
    x = _panel(x)
    return _run(_moments_nb, (x,), _window(d), start, _SKEW, stop=stop, out=out)


def rolling_kurt(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.kurt()`` (NaN below 4 observations and on a constant window)."""
    x = _panel(x)
    return _run(_moments_nb, (x,), _window(d), start, _KURT, stop=stop, out=out)


# --------------------------------------------------------------------------------------------------
# Slope, Rsquare, Resi, WMA: least squares of the values on their slot position p = row - t
# (newest: p = 0). State q = (n, ref, Σp, Σp², Σdev, err, Σdev², err, Σp·dev, err); Σp and Σp² are
# exact integers.


@_helper
def _add_point(q, p, v, sign):
    """q with the point (p, v) added (sign=1) or removed (sign=-1); NaN leaves q unchanged."""
    n, ref, sp, spp, s1, e1, s2, e2, spy, e3 = q
    present = v == v
    dev = v - ref if present else 0.0
    w = sign if present else 0.0
    n += w
    s1, e1 = _two_sum(s1, e1, w * dev)
    s2, e2 = _two_sum(s2, e2, w * dev * dev)
    spy, e3 = _two_sum(spy, e3, w * p * dev)
    if n == 0.0:
        return 0.0, ref, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    return n, ref, sp + w * p, spp + w * p * p, s1, e1, s2, e2, spy, e3


@_helper
def _move_back(q):
    """q after every point moved one slot back (p -> p - 1)."""
    n, ref, sp, spp, s1, e1, s2, e2, spy, e3 = q
    spy, e3 = _two_sum(spy, e3, -(s1 + e1))
    return n, ref, sp - n, spp - 2.0 * sp + n, s1, e1, s2, e2, spy, e3


@_helper
def _regression_window(x, j, lo, t):
    """The sums of the window x[lo:t + 1, j] about its mean."""
    q = (0.0, _anchored_mean(x, j, lo, t + 1), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    for r in range(lo, t + 1):
        q = _add_point(q, r - t, _finite(x[r, j]), 1)
    return q


@_helper
def _regression_stat(q, stat, newest, slots):
    """Slope/Rsquare (unmasked)/Resi/WMA of the window summed in q.

    newest: the value at p = 0; slots: the number of rows in the window, NaN rows included.
    """
    n, ref, sp, spp = q[0], q[1], q[2], q[3]
    s1, s2, spy = q[4] + q[5], q[6] + q[7], q[8] + q[9]
    if stat == _WMA:
        weighted = spy + ref * sp + slots * (s1 + n * ref)  # Σ (p + slots) · value
        return weighted / (slots * (slots + 1) / 2.0) / n if n > 0.0 else np.nan
    cov = spy - sp * s1 / n
    slope = cov / (spp - sp * sp / n)
    if stat == _SLOPE:
        result = slope
    elif stat == _RESI:
        result = (newest - ref - s1 / n) + slope * sp / n
    else:  # _RSQUARE
        result = slope * cov / (s2 - s1 * s1 / n)
    return result if n >= 2.0 else np.nan


@_kernel
def _regression_nb(x, d, start, stats, outs, j0, j1):
    """Rolling Slope/Rsquare/Resi/WMA (one stat code per output) of the columns j0:j1 of
    x [T, N], into the tuple outs."""
    T = x.shape[0]
    m = j1 - j0
    starts = start[j0:j1]
    masked = -1  # the output of Rsquare, which is masked where the rolling std is ~0
    for i in range(len(stats)):
        masked = i if stats[i] == _RSQUARE else masked
    state = np.zeros((10, m))
    spread = np.zeros((6, m))  # pandas' roll_var states, for the Rsquare mask
    redo = np.zeros(m)
    for t in range(T):
        row, old = x[t, j0:j1], x[max(t - d, 0), j0:j1]
        for k in range(m):
            s0 = starts[k]
            v, u = _entering(row[k], t, s0), _leaving(old[k], t, s0, d)
            q = _add_point(_move_back(_load10(state, k)), -d, u, -1)
            q = _add_point(q, 0, v, 1)
            _store10(state, k, q)
            redo[k] = 1.0 if _cancels(q[0], q[4] + q[5], q[6] + q[7]) else 0.0
        for i in range(len(stats)):
            dst, stat = outs[i][t, j0:j1], stats[i]
            for k in range(m):
                s0 = starts[k]
                v = _entering(row[k], t, s0)
                result = _regression_stat(
                    _load10(state, k), stat, v, t - _window_start(t, s0, d) + 1
                )
                dst[k] = result if t >= s0 else np.nan
        if masked >= 0:  # a loop of its own: a branch in the loops above slows them down
            dst = outs[masked][t, j0:j1]
            for k in range(m):
                s0 = starts[k]
                v, u = _entering(row[k], t, s0), _leaving(old[k], t, s0, d)
                w = _roll_var_next(_load6(spread, k), v, u, (t == s0) | (d == 1))
                _store6(spread, k, w)
                dst[k] = np.nan if _std_masked(w) else dst[k]
        for k in range(m):
            s0 = starts[k]
            if t < s0 or (redo[k] == 0.0 and (masked < 0 or spread[5, k] == 0.0)):
                continue
            lo = _window_start(t, s0, d)
            if redo[k] != 0.0:
                _store10(state, k, _regression_window(x, j0 + k, lo, t))
            if masked >= 0 and spread[5, k] != 0.0:
                _store6(spread, k, _roll_var_window(x, j0 + k, lo, t + 1))
            for i in range(len(stats)):
                newest = _finite(x[t, j0 + k])
                result = _regression_stat(_load10(state, k), stats[i], newest, t - lo + 1)
                if i == masked:
                    result = np.nan if _std_masked(_load6(spread, k)) else result
                outs[i][t, j0 + k] = result


_REGRESSION = {"slope": _SLOPE, "rsquare": _RSQUARE, "resi": _RESI, "wma": _WMA}


def rolling_regression(
    x: np.ndarray,
    d: int,
    stats: tuple[str, ...],
    start: np.ndarray,
    *,
    out: tuple[np.ndarray, ...] | None = None,
    stop: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """Several of :func:`rolling_slope`, :func:`rolling_rsquare`, :func:`rolling_resi` and
    :func:`rolling_wma` (``stats``: their names) in one pass, one result per stat."""
    return _several(_regression_nb, x, d, _codes(stats, _REGRESSION), start, out, stop)


def _several(
    kernel: Callable[..., None],
    x: np.ndarray,
    d: int,
    params: np.ndarray,
    start: np.ndarray,
    out: tuple[np.ndarray, ...] | None,
    stop: np.ndarray | None,
) -> tuple[np.ndarray, ...]:
    """Run a several-statistics kernel, one result per entry of ``params`` (its statistic)."""
    x = _panel(x)
    out = tuple(np.empty(x.shape) for _ in params) if out is None else out
    return _run(kernel, (x,), _window(d), start, params, stop=stop, out=out)


def _codes(stats: tuple[str, ...], known: dict[str, int]) -> np.ndarray:
    """The kernel codes of statistic names, checked against ``known``."""
    if not stats or any(s not in known for s in stats):
        raise ValueError(f"statistics must be among {sorted(known)}, got {list(stats)}")
    return np.array([known[s] for s in stats], dtype=np.int64)


def _one(
    many: Callable[..., tuple[np.ndarray, ...]], out: np.ndarray | None, *args: Any, **kw: Any
) -> np.ndarray:
    """The single result of a several-statistics function."""
    return many(*args, out=None if out is None else (out,), **kw)[0]


def rolling_slope(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.apply(f, raw=True)``, f: OLS slope of the non-NaN values on their slot position."""
    return _one(rolling_regression, out, x, d, ("slope",), start, stop=stop)


def rolling_rsquare(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.apply(f, raw=True)``, f: r² of (position, value); NaN where ``|r.std()| <= 2e-5``."""
    return _one(rolling_regression, out, x, d, ("rsquare",), start, stop=stop)


def rolling_resi(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.apply(f, raw=True)``, f: residual of the newest value from the OLS line on position."""
    return _one(rolling_regression, out, x, d, ("resi",), start, stop=stop)


def rolling_wma(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.apply(lambda a: np.nanmean(a * w), raw=True)``, ``w = arange(1, n+1) / sum(1..n)``."""
    return _one(rolling_regression, out, x, d, ("wma",), start, stop=stop)


# --------------------------------------------------------------------------------------------------
# Cov, Corr over the rows where both series are present. State
# q = (n, rx, ry, Σdx, err, Σdy, err, Σdx², err, Σdy², err, Σdx·dy, err), deviations from rx, ry.


@_helper
def _add_pair(q, vx, vy, sign):
    """q with the pair (vx, vy) added (sign=1) or removed (sign=-1) if both are present."""
    n, rx, ry, sx, ex, sy, ey, sxx, exx, syy, eyy, sxy, exy = q
    present = (vx == vx) & (vy == vy)
    dx = vx - rx if present else 0.0
    dy = vy - ry if present else 0.0
    w = sign if present else 0.0
    n += w
    sx, ex = _two_sum(sx, ex, w * dx)
    sy, ey = _two_sum(sy, ey, w * dy)
    sxx, exx = _two_sum(sxx, exx, w * dx * dx)
    syy, eyy = _two_sum(syy, eyy, w * dy * dy)
    sxy, exy = _two_sum(sxy, exy, w * dx * dy)
    if n == 0.0:
        return 0.0, rx, ry, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    return n, rx, ry, sx, ex, sy, ey, sxx, exx, syy, eyy, sxy, exy


@_helper
def _pair_cancels(q):
    """True when the centred sum of squares of the x or the y of the pairs in q lost precision."""
    return _cancels(q[0], q[3] + q[4], q[7] + q[8]) | _cancels(q[0], q[5] + q[6], q[9] + q[10])


@_helper
def _pair_window(x, y, j, lo, hi):
    """The sums of the pairs of x[lo:hi, j], y[lo:hi, j] about their means."""
    n = 0
    ax, ay, sx, sy = 0.0, 0.0, 0.0, 0.0
    for r in range(lo, hi):  # means anchored on the first pair: exact when all pairs are equal
        vx, vy = _finite(x[r, j]), _finite(y[r, j])
        if not (np.isnan(vx) or np.isnan(vy)):
            if n == 0:
                ax, ay = vx, vy
            sx += vx - ax
            sy += vy - ay
            n += 1
    if n:
        ax, ay = ax + sx / n, ay + sy / n
    q = (0.0, ax, ay, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    for r in range(lo, hi):
        q = _add_pair(q, _finite(x[r, j]), _finite(y[r, j]), 1)
    return q


@_helper
def _pair_stat(q, stat):
    """Cov (ddof=1) or Corr (unmasked) of the pairs summed in q."""
    n = q[0]
    sx, sy, sxx, syy, sxy = q[3] + q[4], q[5] + q[6], q[7] + q[8], q[9] + q[10], q[11] + q[12]
    cov = sxy - sx * sy / n
    vx = sxx - sx * sx / n
    vy = syy - sy * sy / n
    if stat == _COV:
        return cov / (n - 1.0) if n >= 2.0 else np.nan
    return cov / np.sqrt(vx * vy) if (n >= 2.0) & (vx > 0.0) & (vy > 0.0) else np.nan


@_kernel
def _pair_nb(x, y, d, start, stat, out, j0, j1):
    """Rolling Cov/Corr (stat code) of the columns j0:j1 of x, y [T, N], into out."""
    T = x.shape[0]
    m = j1 - j0
    starts = start[j0:j1]
    state = np.zeros((13, m))
    spread_x = np.zeros((6, m))  # pandas' roll_var states, for the Corr masks
    spread_y = np.zeros((6, m))
    redo = np.zeros(m)
    values = np.empty((4, m))  # this row's entering x, y and leaving x, y
    for t in range(T):
        row_x, old_x = x[t, j0:j1], x[max(t - d, 0), j0:j1]
        row_y, old_y = y[t, j0:j1], y[max(t - d, 0), j0:j1]
        dst = out[t, j0:j1]
        for k in range(m):
            s0 = starts[k]
            values[0, k], values[1, k] = _entering(row_x[k], t, s0), _entering(row_y[k], t, s0)
            values[2, k] = _leaving(old_x[k], t, s0, d)
            values[3, k] = _leaving(old_y[k], t, s0, d)
        for k in range(m):
            q = _add_pair(_load13(state, k), values[2, k], values[3, k], -1)
            q = _add_pair(q, values[0, k], values[1, k], 1)
            _store13(state, k, q)
            redo[k] = 1.0 if _pair_cancels(q) else 0.0
            dst[k] = _pair_stat(q, stat) if t >= starts[k] else np.nan
        if stat == _CORR:  # a loop of its own: a branch in the loop above slows it down
            for k in range(m):
                s0 = starts[k]
                fresh = (t == s0) | (d == 1)
                wx = _roll_var_next(_load6(spread_x, k), values[0, k], values[2, k], fresh)
                wy = _roll_var_next(_load6(spread_y, k), values[1, k], values[3, k], fresh)
                _store6(spread_x, k, wx)
                _store6(spread_y, k, wy)
                dst[k] = np.nan if _std_masked(wx) | _std_masked(wy) else dst[k]
        for k in range(m):
            s0 = starts[k]
            stale_spread = stat == _CORR and (spread_x[5, k] != 0.0 or spread_y[5, k] != 0.0)
            if t < s0 or (redo[k] == 0.0 and not stale_spread):
                continue
            lo = _window_start(t, s0, d)
            if redo[k] != 0.0:
                _store13(state, k, _pair_window(x, y, j0 + k, lo, t + 1))
            result = _pair_stat(_load13(state, k), stat)
            if stat == _CORR:
                if spread_x[5, k] != 0.0:
                    _store6(spread_x, k, _roll_var_window(x, j0 + k, lo, t + 1))
                if spread_y[5, k] != 0.0:
                    _store6(spread_y, k, _roll_var_window(y, j0 + k, lo, t + 1))
                masked = _std_masked(_load6(spread_x, k)) | _std_masked(_load6(spread_y, k))
                result = np.nan if masked else result
            dst[k] = result


def _pair(
    x: np.ndarray,
    y: np.ndarray,
    d: int,
    start: np.ndarray,
    stat: int,
    out: np.ndarray | None,
    stop: np.ndarray | None,
) -> np.ndarray:
    x, y = _panel(x), _panel(y)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in shape: {x.shape} vs {y.shape}")
    return _run(_pair_nb, (x, y), _window(d), start, stat, stop=stop, out=out)


def rolling_cov(
    x: np.ndarray,
    y: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``rx.cov(sy)`` (pairs where both are present, ddof=1)."""
    return _pair(x, y, d, start, _COV, out, stop)


def rolling_corr(
    x: np.ndarray,
    y: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``rx.corr(sy)``, NaN where ``|rx.std()| <= 2e-5`` or ``|ry.std()| <= 2e-5`` (Qlib)."""
    return _pair(x, y, d, start, _CORR, out, stop)


# --------------------------------------------------------------------------------------------------
# Median, quantile: each column's window values (NaN excluded) kept sorted in values[k, :m]


@_helper
def _sorted_replace(values, k, m, v, u):
    """Remove u (present unless NaN) from and insert v (unless NaN) into the sorted values[k, :m],
    in place; returns the new length. Positions are counts of smaller values (branch-free)."""
    below_u, below_v = 0, 0
    for i in range(m):
        below_u += values[k, i] < u
        below_v += values[k, i] < v
    if np.isnan(u):
        if np.isnan(v):
            return m
        for i in range(m, below_v, -1):
            values[k, i] = values[k, i - 1]
        values[k, below_v] = v
        return m + 1
    if np.isnan(v):
        for i in range(below_u, m - 1):
            values[k, i] = values[k, i + 1]
        return m - 1
    pos = below_v - (u < v)  # v's place once u is gone
    for i in range(below_u, pos):
        values[k, i] = values[k, i + 1]
    for i in range(below_u, pos, -1):
        values[k, i] = values[k, i - 1]
    values[k, pos] = v
    return m


@_helper
def _quantile(values, k, m, q):
    """Quantile q (linear interpolation, as pandas) of the sorted values[k, :m]; q = -1: median."""
    if m == 0:
        return np.nan
    if q < 0.0:
        h = m // 2
        return values[k, h] if m % 2 else (values[k, h - 1] + values[k, h]) / 2.0
    pos = q * (m - 1)
    i = int(pos)
    if pos == i:
        return values[k, i]
    return values[k, i] + (values[k, i + 1] - values[k, i]) * (pos - i)


@_kernel
def _quantile_nb(x, d, start, qs, outs, j0, j1):
    """Rolling quantiles qs (q = -1: median; one per output) of the columns j0:j1 of x [T, N],
    into the tuple outs."""
    T = x.shape[0]
    starts = start[j0:j1]
    values = np.empty((j1 - j0, d if d > 0 else T))
    size = np.zeros(j1 - j0, np.int64)
    for t in range(T):
        row, old = x[t, j0:j1], x[max(t - d, 0), j0:j1]
        for k in range(j1 - j0):
            s0 = starts[k]
            if t >= s0:
                u = _leaving(old[k], t, s0, d)
                size[k] = _sorted_replace(values, k, size[k], _finite(row[k]), u)
        for i in range(len(qs)):
            dst, q = outs[i][t, j0:j1], qs[i]
            for k in range(j1 - j0):
                dst[k] = _quantile(values, k, size[k], q) if t >= starts[k] else np.nan


def rolling_quantiles(
    x: np.ndarray,
    d: int,
    qs: tuple[float, ...],
    start: np.ndarray,
    *,
    out: tuple[np.ndarray, ...] | None = None,
    stop: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """Several :func:`rolling_quantile` (``q = -1``: :func:`rolling_median`) in one pass, one
    result per q."""
    if not qs or any(not (0.0 <= q <= 1.0 or q == -1.0) for q in qs):
        raise ValueError(f"quantiles must be in [0, 1] (or -1: the median), got {list(qs)}")
    return _several(_quantile_nb, x, d, np.array(qs, dtype=np.float64), start, out, stop)


def rolling_median(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.median()``."""
    return _one(rolling_quantiles, out, x, d, (-1.0,), start, stop=stop)


def rolling_quantile(
    x: np.ndarray,
    d: int,
    q: float,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.quantile(q)`` (linear interpolation)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    return _one(rolling_quantiles, out, x, d, (float(q),), start, stop=stop)


# --------------------------------------------------------------------------------------------------
# Rank, mad: scans of each window, row by row so that they vectorize across the columns. A scan
# visits the rows of the longest window, oldest first; row r is in column k's window when
# r >= start[k]. Expanding windows (d == 0) rescan from the first row: O(T) per row.


@_helper
def _scan_start(t, d):
    """First row a scan for the windows ending at row t visits."""
    return 0 if d == 0 else max(t - d + 1, 0)


@_kernel
def _rank_nb(x, d, start, out, j0, j1):
    """Rolling pct-rank (average ties) of the columns j0:j1 of x [T, N], into out."""
    T = x.shape[0]
    m = j1 - j0
    starts = start[j0:j1]
    today = np.empty(m)
    below = np.empty(m)
    equal = np.empty(m)
    count = np.empty(m)
    for t in range(T):
        for k in range(m):
            today[k] = _finite(x[t, j0 + k])
        below[:] = 0.0
        equal[:] = 0.0
        count[:] = 0.0
        for r in range(_scan_start(t, d), t + 1):
            row = x[r, j0:j1]
            for k in range(m):
                v = _finite(row[k])
                inside = (r >= starts[k]) & (v == v)
                count[k] += 1.0 if inside else 0.0
                below[k] += 1.0 if inside & (v < today[k]) else 0.0
                equal[k] += 1.0 if inside & (v == today[k]) else 0.0
        dst = out[t, j0:j1]
        for k in range(m):
            ok = (t >= starts[k]) & (today[k] == today[k])
            dst[k] = (below[k] + (equal[k] + 1.0) / 2.0) / count[k] if ok else np.nan


def rolling_rank(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.rank(method="average", pct=True)`` (NaN where today's value is NaN)."""
    x = _panel(x)
    return _run(_rank_nb, (x,), _window(d), start, stop=stop, out=out)


# --------------------------------------------------------------------------------------------------
# Max, min and their positions (van Herk / Gil-Werman): time is cut into chunks of d rows, and the
# window [t - d + 1, t] is the tail of one chunk (computed backwards once the chunk is done) plus
# the head of the next (carried forwards), so each row costs O(1). A candidate is a (value, row)
# pair, with a NaN value for none; of two, the larger sign·value wins, the older row on ties
# (numpy's first occurrence). The first NaN row of the window is found the same way.


@_helper
def _better(v_old, r_old, v_new, r_new, sign):
    """The better of an older and a newer candidate (value, row)."""
    if np.isnan(v_new) or (v_old == v_old and not sign * v_new > sign * v_old):
        return v_old, r_old
    return v_new, r_new


@_kernel
def _extreme_nb(x, d, start, stats, outs, j0, j1):
    """Rolling max/idxmax or min/idxmin (stat codes, one per output, all of one sign) of the
    columns j0:j1 of x [T, N], into the tuple outs."""
    T = x.shape[0]
    sign = 1.0 if stats[0] == _MAX or stats[0] == _IDXMAX else -1.0
    chunk = d if 0 < d <= T else max(T, 1)
    none = np.inf  # "no NaN row"
    m = j1 - j0
    starts = start[j0:j1]
    tail_value = np.empty((chunk, m))  # of the previous chunk: best of rows i .. its end
    tail_row = np.empty((chunk, m))
    tail_nan = np.empty((chunk, m))  # first NaN row in i .. its end
    head_value = np.empty(m)  # of the current chunk: best of its rows up to t
    head_row = np.empty(m)
    head_nan = np.empty(m)
    extreme = np.empty(m)  # this row's results: the extreme value and its position
    position = np.empty(m)
    for c0 in range(0, T, chunk):
        c1 = min(T, c0 + chunk)
        for t in range(c0, c1):
            row = x[t, j0:j1]
            i = t - d + 1 - (c0 - chunk)  # the window's first row in the previous chunk
            use_tail = d > 0 and c0 > 0 and i < chunk
            for k in range(m):
                s0 = starts[k]
                v = _entering(row[k], t, s0)
                nan_row = t if (t >= s0) & (v != v) else none
                if t == c0:
                    head_value[k], head_row[k], head_nan[k] = v, t, nan_row
                else:
                    head_value[k], head_row[k] = _better(head_value[k], head_row[k], v, t, sign)
                    head_nan[k] = min(head_nan[k], nan_row)
                best, best_row, first_nan = head_value[k], head_row[k], head_nan[k]
                if use_tail:
                    best, best_row = _better(tail_value[i, k], tail_row[i, k], best, best_row, sign)
                    first_nan = min(tail_nan[i, k], first_nan)
                lo = _window_start(t, s0, d)
                found = (t >= s0) & (best == best)
                extreme[k] = best if found else np.nan
                at = best_row if first_nan == none else first_nan
                position[k] = at - lo + 1.0 if found else np.nan
            for i in range(len(stats)):
                values = extreme if stats[i] == _MAX or stats[i] == _MIN else position
                outs[i][t, j0:j1] = values
        for t in range(c1 - 1, c0 - 1 if d > 0 else c1 - 1, -1):
            row = x[t, j0:j1]
            i = t - c0
            for k in range(m):
                s0 = starts[k]
                v = _entering(row[k], t, s0)
                nan_row = t if (t >= s0) & (v != v) else none
                if t == c1 - 1:
                    tail_value[i, k], tail_row[i, k], tail_nan[i, k] = v, t, nan_row
                else:
                    tail_value[i, k], tail_row[i, k] = _better(
                        v, t, tail_value[i + 1, k], tail_row[i + 1, k], sign
                    )
                    tail_nan[i, k] = min(nan_row, tail_nan[i + 1, k])


_EXTREMES = {"max": _MAX, "min": _MIN, "idxmax": _IDXMAX, "idxmin": _IDXMIN}


def rolling_extremes(
    x: np.ndarray,
    d: int,
    stats: tuple[str, ...],
    start: np.ndarray,
    *,
    out: tuple[np.ndarray, ...] | None = None,
    stop: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """:func:`rolling_max` and :func:`rolling_idxmax`, or :func:`rolling_min` and
    :func:`rolling_idxmin` (``stats``: their names), in one pass, one result per stat."""
    codes = _codes(stats, _EXTREMES)
    if len({s.removeprefix("idx") for s in stats}) > 1:
        raise ValueError(f"statistics must all be of max or all of min, got {list(stats)}")
    return _several(_extreme_nb, x, d, codes, start, out, stop)


def rolling_max(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.max()``."""
    return _one(rolling_extremes, out, x, d, ("max",), start, stop=stop)


def rolling_min(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.min()``."""
    return _one(rolling_extremes, out, x, d, ("min",), start, stop=stop)


def rolling_idxmax(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.apply(lambda a: a.argmax() + 1, raw=True)`` (the first NaN slot wins, as in numpy)."""
    return _one(rolling_extremes, out, x, d, ("idxmax",), start, stop=stop)


def rolling_idxmin(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.apply(lambda a: a.argmin() + 1, raw=True)`` (the first NaN slot wins, as in numpy)."""
    return _one(rolling_extremes, out, x, d, ("idxmin",), start, stop=stop)


@_kernel
def _mad_nb(x, d, start, out, j0, j1):
    """Rolling mean absolute deviation of the columns j0:j1 of x [T, N], into out."""
    T = x.shape[0]
    m = j1 - j0
    starts = start[j0:j1]
    count = np.empty(m)
    anchor = np.empty(m)
    total = np.empty(m)
    for t in range(T):
        count[:] = 0.0
        total[:] = 0.0
        for r in range(_scan_start(t, d), t + 1):  # mean, anchored on the first value
            row = x[r, j0:j1]
            for k in range(m):
                v = _finite(row[k])
                inside = (r >= starts[k]) & (v == v)
                anchor[k] = v if inside & (count[k] == 0.0) else anchor[k]
                total[k] += v - anchor[k] if inside else 0.0
                count[k] += 1.0 if inside else 0.0
        for k in range(m):
            anchor[k] += total[k] / count[k]
            total[k] = 0.0
        for r in range(_scan_start(t, d), t + 1):
            row = x[r, j0:j1]
            for k in range(m):
                v = _finite(row[k])
                inside = (r >= starts[k]) & (v == v)
                total[k] += abs(v - anchor[k]) if inside else 0.0
        dst = out[t, j0:j1]
        for k in range(m):
            ok = (t >= starts[k]) & (count[k] > 0.0)
            dst[k] = total[k] / count[k] if ok else np.nan


def rolling_mad(
    x: np.ndarray,
    d: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``r.apply(lambda a: np.mean(np.abs(b - b.mean())), raw=True)``, ``b = a[~np.isnan(a)]``."""
    x = _panel(x)
    return _run(_mad_nb, (x,), _window(d), start, stop=stop, out=out)


# --------------------------------------------------------------------------------------------------
# Exponentially weighted mean


@_kernel
def _ewm_nb(x, alpha, start, out, j0, j1):
    """pandas' ewm(alpha, adjust=True, ignore_na=False).mean() of the columns j0:j1 of x."""
    T = x.shape[0]
    keep = 1.0 - alpha
    starts = start[j0:j1]
    mean = np.full(j1 - j0, np.nan)
    old_weight = np.ones(j1 - j0)
    for t in range(T):
        row, dst = x[t, j0:j1], out[t, j0:j1]
        for k in range(j1 - j0):
            if t < starts[k]:
                dst[k] = np.nan
                continue
            v = _finite(row[k])
            if not np.isnan(mean[k]):
                old_weight[k] *= keep
                if not np.isnan(v):
                    if mean[k] != v:
                        mean[k] = (old_weight[k] * mean[k] + v) / (old_weight[k] + 1.0)
                    old_weight[k] += 1.0
            elif not np.isnan(v):
                mean[k] = v
            dst[k] = mean[k]


def ewm_mean(
    x: np.ndarray,
    n: float,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``s.ewm(span=n, min_periods=1).mean()`` for n >= 1, ``s.ewm(alpha=n, …)`` for 0 < n < 1."""
    if n >= 1:
        com = (n - 1.0) / 2.0
    elif n > 0:
        com = 1.0 / n - 1.0
    else:
        raise ValueError(f"ewm_mean needs n >= 1 (span) or 0 < n < 1 (alpha), got {n}")
    x = _panel(x)
    return _run(_ewm_nb, (x,), 1.0 / (1.0 + com), start, stop=stop, out=out)


# --------------------------------------------------------------------------------------------------
# Shift


@_kernel
def _shift_nb(x, n, start, out, j0, j1):
    """The columns j0:j1 of x [T, N] shifted n rows within their series (n == 0: the series'
    first value), into out."""
    T = x.shape[0]
    starts = start[j0:j1]
    for t in range(T):
        src, dst = x[min(max(t - n, 0), T - 1), j0:j1], out[t, j0:j1]
        for k in range(j1 - j0):
            s0 = starts[k]
            if n == 0:
                dst[k] = x[s0, j0 + k] if t >= s0 else np.nan
            else:
                dst[k] = src[k] if (t >= s0) & (t - n >= s0) & (t - n < T) else np.nan


def shift(
    x: np.ndarray,
    n: int,
    start: np.ndarray,
    *,
    out: np.ndarray | None = None,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """``s.shift(n)``; n == 0 gives ``s.iloc[0]`` on every row (Qlib ``Ref(x, 0)``); keeps dtype."""
    x = _panel(x)
    return _run(_shift_nb, (x,), int(n), start, dtype=x.dtype, stop=stop, out=out)


# --------------------------------------------------------------------------------------------------
# Elementwise work in parallel: the same numpy loops or plain copies on row ranges, so results are
# identical to one whole-array call.


def apply_ufunc(ufunc: np.ufunc, args: list[Any], out: np.ndarray) -> np.ndarray:
    """``ufunc(*args, out=out)`` on row ranges in parallel; ``args`` are numbers or arrays of
    ``out``'s shape ``[T, N]``."""
    if any(isinstance(a, np.ndarray) and a.shape != out.shape for a in args):
        raise ValueError(f"apply_ufunc needs numbers or arrays of shape {out.shape}")

    def rows(a: int, b: int) -> None:
        with np.errstate(all="ignore"):  # per thread: numpy's error state is thread-local
            ufunc(*(v[a:b] if isinstance(v, np.ndarray) else v for v in args), out=out[a:b])

    _in_ranges(rows, out.shape[0], per_thread=1)
    return out


_INDEX = (np.dtype(np.int32), np.dtype(np.int64))


@_kernel
def _gather_nb(src, flat, out, pos, i0, i1):
    """out[pos[i]] = src[flat[i]] for i in i0:i1, cast to out's dtype (float64 → float32 rounds to
    nearest and overflows to ±inf, as numpy's astype does)."""
    for i in range(i0, i1):
        out[pos[i]] = src[flat[i]]


def gather(
    src: np.ndarray, flat: np.ndarray, out: np.ndarray, pos: np.ndarray | None = None
) -> np.ndarray:
    """``out[pos] = src[flat]`` (1-D float arrays; int32 or int64 indices; ``pos=None``:
    ``out[:]``) in parallel, cast to ``out``'s dtype; returns ``out``. ``pos`` must not repeat a
    position. Reads are fastest with ``flat`` ascending."""
    pos = np.arange(len(flat), dtype=flat.dtype) if pos is None else pos
    if src.ndim != 1 or flat.dtype not in _INDEX or pos.dtype not in _INDEX:
        raise ValueError("gather needs a 1-D src and int32 or int64 indices")
    if not len(flat) == len(pos) == len(out):
        raise ValueError("gather needs as many indices as out has items")
    _in_ranges(lambda a, b: _gather_nb(src, flat, out, pos, a, b), len(flat), per_thread=1)
    return out
