"""Rolling-window kernels of Qlib's expression operators: pure arrays, compiled with numba.

Contract shared by every public function:

- ``x`` is a panel ``[T, N]`` (time rows, instrument columns) of float32 or float64 (booleans and
  integers are accepted). Results are C-contiguous float64 ``[T, N]``; only :func:`shift` keeps the
  input dtype.
- ``start`` is ``int64 [N]``: column ``j``'s series exists from row ``start[j] >= 0`` on
  (``start[j] >= T``: the column never exists). Rows before it do not exist: the output is NaN there
  and no window reaches before it. NaN values from ``start[j]`` on (suspended days) are rows of the
  series and occupy window slots.
- A window ``d >= 1`` at row ``t`` covers rows ``max(start[j], t - d + 1) .. t``: partial windows at
  the start of a series, like pandas ``min_periods=1``. ``d == 0`` is the expanding window from
  ``start[j]``. A window without any non-NaN value gives NaN unless stated otherwise.
- Like pandas rolling windows, the kernels read ``±inf`` as NaN (only :func:`rolling_count` counts
  it as an observation, as pandas does).

Each function equals, column by column, the pandas expression in its docstring evaluated on
``s = pd.Series(x[start[j]:, j])`` with ``r = s.rolling(d, min_periods=1)`` (``d == 0``:
``r = s.expanding(min_periods=1)``), placed back at rows ``start[j]:``.

How it is computed:

- Every kernel walks time row by row over blocks of ``_BLOCK`` adjacent columns (one parallel task
  per block) and keeps one small state per column. Rows are read contiguously, and the columns of a
  block are independent chains that the CPU overlaps.
- ``Var``/``Std`` (and the std behind the ``Rsquare``/``Corr`` masks) replay pandas' ``roll_var``
  step by step, so they are bit-identical to pandas, including its rounding residue on a flat
  window that follows volatile data (a small positive std instead of 0), which decides Qlib's
  ``|std| <= 2e-5`` masks.
- Sum and mean keep compensated (TwoSum) running sums. Skew, kurt, slope/rsquare/resi/wma and
  cov/corr keep compensated sums of powers of deviations from a reference value, the window mean at
  the last exact recomputation; a window is recomputed when its centred sum of squares has lost
  more than 4 bits to cancellation, so a flat window has an exactly zero spread.
- Max/min and their positions use monotonic deques; median, quantile and rank keep each window's
  values sorted; mad scans its window, O(d) per row.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

__all__ = [
    "ewm_mean",
    "rolling_corr",
    "rolling_count",
    "rolling_cov",
    "rolling_idxmax",
    "rolling_idxmin",
    "rolling_kurt",
    "rolling_mad",
    "rolling_max",
    "rolling_mean",
    "rolling_median",
    "rolling_min",
    "rolling_quantile",
    "rolling_rank",
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

_helper = numba.njit(cache=True, error_model="numpy", inline="always")
_kernel = numba.njit(cache=True, parallel=True, error_model="numpy")

_BLOCK = 32  # columns per parallel task
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
_MEDIAN, _QUANTILE, _RANK = 0, 1, 2
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


def _window(d: int) -> int:
    """A checked window length (0 = expanding)."""
    if d < 0:
        raise ValueError(f"window must be >= 0 (0 = expanding), got {d}")
    return int(d)


# --------------------------------------------------------------------------------------------------
# Shared helpers. Hot loops read each block's rows through 1-D row views and call only small helpers
# that take no 2-D array (those calls are costly); whole-window recomputations, which are rare, do.


@_helper
def _n_blocks(n):
    """Number of blocks of _BLOCK columns covering n columns."""
    return (n + _BLOCK - 1) // _BLOCK


@_helper
def _finite(v):
    """v as float64, with ±inf read as NaN (as pandas rolling windows do)."""
    v = np.float64(v)
    return v if abs(v) < np.inf else np.nan


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
def _accumulate(state, i, v):
    """Add v to the compensated sum state[i] + state[i + 1] (in place)."""
    state[i], state[i + 1] = _two_sum(state[i], state[i + 1], v)


@_helper
def _cancels(n, s1, s2):
    """True when s2 - s1²/n (n values, their sum s1 and sum of squares s2) lost more than 4 bits."""
    return n > 0 and _CANCELLATION * (n * s2 - s1 * s1) < n * s2


# --------------------------------------------------------------------------------------------------
# Sum, mean: compensated running sums


@_kernel
def _sum_nb(x, d, start, mean):
    """Rolling sum (or mean, if `mean`) of every column of x [T, N]."""
    T, N = x.shape
    out = np.empty((T, N))
    for b in prange(_n_blocks(N)):
        j0 = b * _BLOCK
        j1 = min(N, j0 + _BLOCK)
        starts = start[j0:j1]
        total = np.zeros(j1 - j0)
        error = np.zeros(j1 - j0)
        count = np.zeros(j1 - j0)
        for t in range(T):
            row, old, dst = x[t, j0:j1], x[max(t - d, 0), j0:j1], out[t, j0:j1]
            for k in range(j1 - j0):
                v = _finite(row[k])
                u = _finite(old[k])
                add = (t >= starts[k]) & (v == v)
                remove = (d > 0) & (t - d >= starts[k]) & (u == u)
                total[k], error[k] = _two_sum(total[k], error[k], v if add else 0.0)
                total[k], error[k] = _two_sum(total[k], error[k], -u if remove else 0.0)
                count[k] += (1.0 if add else 0.0) - (1.0 if remove else 0.0)
                s = total[k] + error[k]
                dst[k] = np.nan if count[k] == 0.0 else s / count[k] if mean else s
    return out


def rolling_sum(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.sum()``."""
    x = _panel(x)
    return _sum_nb(x, _window(d), _starts(start, x), False)


def rolling_mean(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.mean()``."""
    x = _panel(x)
    return _sum_nb(x, _window(d), _starts(start, x), True)


def rolling_count(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.count()`` (0, not NaN, on an all-NaN window; ±inf counts as an observation)."""
    return rolling_sum(~np.isnan(np.asarray(x)), d, start)


# --------------------------------------------------------------------------------------------------
# Var, Std: pandas' roll_var replayed step by step. State w = [nobs, mean, ssqdm, compensation_add,
# compensation_remove, numerically_unstable].


@_helper
def _welford(w, val, sign):
    """pandas' add_var (sign=1) or remove_var (sign=-1) on the state w, in place; NaN is skipped."""
    if np.isnan(val):
        return
    prev_m2 = w[2]
    w[0] += sign
    if w[0] == 0.0:
        w[1] = 0.0
        w[2] = 0.0
        w[5] = 0.0
        return
    c = 3 if sign == 1 else 4
    prev_mean = w[1] - w[c]
    y = val - w[c]
    delta = y - w[1]
    w[c] = delta + w[1] - y
    w[1] = w[1] + sign * delta / w[0]
    w[2] = w[2] + sign * ((val - prev_mean) * (val - w[1]))
    if prev_m2 * _PANDAS_INV_COND_TOL > w[2]:
        w[5] = 1.0


@_helper
def _roll_var_update(w, v, u, fresh):
    """pandas' step to the next window: remove u, add v; True when the window must then be
    recomputed (a fresh start, i.e. the first row or d == 1, or a numerically unstable step)."""
    if not fresh:
        _welford(w, u, -1)
        _welford(w, v, 1)
    return fresh or w[5] != 0.0


@_helper
def _roll_var_recompute(w, x, j, lo, hi):
    """pandas' recomputation of w from the window x[lo:hi, j], in place."""
    w[:] = 0.0
    for r in range(lo, hi):
        _welford(w, _finite(x[r, j]), 1)
    w[5] = 0.0


@_helper
def _roll_var(w):
    """pandas' calc_var (ddof=1) of the state w."""
    return w[2] / (w[0] - 1.0) if w[0] > 1.0 else np.nan


@_helper
def _std_masked(w):
    """Qlib's np.isclose(std, 0, atol=2e-5) on pandas' rolling std; a NaN std does not mask."""
    var = _roll_var(w)
    return var == var and np.sqrt(max(var, 0.0)) <= _STD_MASK_ATOL


@_kernel
def _var_nb(x, d, start, take_sqrt):
    """pandas' rolling var (ddof=1), or std if take_sqrt, of every column of x [T, N]."""
    T, N = x.shape
    out = np.empty((T, N))
    for b in prange(_n_blocks(N)):
        j0 = b * _BLOCK
        j1 = min(N, j0 + _BLOCK)
        starts = start[j0:j1]
        state = np.zeros((j1 - j0, 6))
        for t in range(T):
            row, old, dst = x[t, j0:j1], x[max(t - d, 0), j0:j1], out[t, j0:j1]
            for k in range(j1 - j0):
                s0 = starts[k]
                if t < s0:
                    dst[k] = np.nan
                    continue
                w = state[k]
                if _roll_var_update(
                    w, _finite(row[k]), _leaving(old[k], t, s0, d), t == s0 or d == 1
                ):
                    _roll_var_recompute(w, x, j0 + k, _window_start(t, s0, d), t + 1)
                var = _roll_var(w)
                dst[k] = np.sqrt(max(var, 0.0)) if take_sqrt and var == var else var
    return out


def rolling_var(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.var()`` (ddof=1: NaN with one observation), bit-identical to pandas."""
    x = _panel(x)
    return _var_nb(x, _window(d), _starts(start, x), False)


def rolling_std(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.std()`` (ddof=1: NaN with one observation), bit-identical to pandas."""
    x = _panel(x)
    return _var_nb(x, _window(d), _starts(start, x), True)


# --------------------------------------------------------------------------------------------------
# Skew, kurt: compensated power sums of deviations from a reference value. State
# p = [n, ref, Σdev, err, Σdev², err, Σdev³, err, Σdev⁴, err].


@_helper
def _add_powers(p, dev, sign):
    """Add (sign=1) or remove (sign=-1) one deviation to the power sums p, in place."""
    if np.isnan(dev):
        return
    p[0] += sign
    if p[0] == 0.0:
        p[2:] = 0.0
        return
    term = sign * dev
    for i in range(2, 10, 2):
        _accumulate(p, i, term)
        term *= dev


@_helper
def _moments_update(p, v, u):
    """Remove u and add v; True when the window must be recomputed (cancellation)."""
    _add_powers(p, u - p[1], -1)
    _add_powers(p, v - p[1], 1)
    return _cancels(p[0], p[2] + p[3], p[4] + p[5])


@_helper
def _moments_recompute(p, x, j, lo, hi):
    """p recomputed from the window x[lo:hi, j] about its mean, in place."""
    p[:] = 0.0
    p[1] = _anchored_mean(x, j, lo, hi)
    for r in range(lo, hi):
        _add_powers(p, _finite(x[r, j]) - p[1], 1)


@_helper
def _moments_stat(p, stat):
    """Bias-corrected skew or kurt of the window summed in p (NaN if too short or constant)."""
    n = p[0]
    s1, s2, s3, s4 = p[2] + p[3], p[4] + p[5], p[6] + p[7], p[8] + p[9]
    a = s1 / n
    m2 = s2 - s1 * a
    if n < (3 if stat == _SKEW else 4) or not m2 > 0.0:
        return np.nan
    if stat == _SKEW:
        m3 = s3 - 3.0 * a * s2 + 2.0 * n * a * a * a
        return n * np.sqrt(n - 1.0) / (n - 2.0) * m3 / (m2 * np.sqrt(m2))
    m4 = s4 - 4.0 * a * s3 + 6.0 * a * a * s2 - 3.0 * n * a * a * a * a
    c = (n - 2.0) * (n - 3.0)
    return (n + 1.0) * n * (n - 1.0) / c * m4 / (m2 * m2) - 3.0 * (n - 1.0) ** 2 / c


@_kernel
def _moments_nb(x, d, start, stat):
    """Rolling skew or kurt (stat code) of every column of x [T, N]."""
    T, N = x.shape
    out = np.empty((T, N))
    for b in prange(_n_blocks(N)):
        j0 = b * _BLOCK
        j1 = min(N, j0 + _BLOCK)
        starts = start[j0:j1]
        state = np.zeros((j1 - j0, 10))
        for t in range(T):
            row, old, dst = x[t, j0:j1], x[max(t - d, 0), j0:j1], out[t, j0:j1]
            for k in range(j1 - j0):
                s0 = starts[k]
                if t < s0:
                    dst[k] = np.nan
                    continue
                p = state[k]
                if _moments_update(p, _finite(row[k]), _leaving(old[k], t, s0, d)):
                    _moments_recompute(p, x, j0 + k, _window_start(t, s0, d), t + 1)
                dst[k] = _moments_stat(p, stat)
    return out


def rolling_skew(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.skew()`` (NaN below 3 observations and on a constant window)."""
    x = _panel(x)
    return _moments_nb(x, _window(d), _starts(start, x), _SKEW)


def rolling_kurt(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.kurt()`` (NaN below 4 observations and on a constant window)."""
    x = _panel(x)
    return _moments_nb(x, _window(d), _starts(start, x), _KURT)


# --------------------------------------------------------------------------------------------------
# Slope, Rsquare, Resi, WMA: least squares of the values on their slot position p = row - t
# (newest: p = 0). State q = [n, ref, Σp, Σp², Σdev, err, Σdev², err, Σp·dev, err]; Σp and Σp² are
# exact integers.


@_helper
def _add_point(q, p, dev, sign):
    """Add (sign=1) or remove (sign=-1) the point (p, ref + dev) to q, in place; NaN is skipped."""
    if np.isnan(dev):
        return
    q[0] += sign
    if q[0] == 0.0:
        q[2:] = 0.0
        return
    q[2] += sign * p
    q[3] += sign * p * p
    _accumulate(q, 4, sign * dev)
    _accumulate(q, 6, sign * dev * dev)
    _accumulate(q, 8, sign * p * dev)


@_helper
def _regression_update(q, v, u, d):
    """Move every point one slot back, remove u (at p = -d), add v (at p = 0); True when the
    window must be recomputed (cancellation)."""
    q[3] += q[0] - 2.0 * q[2]
    q[2] -= q[0]
    _accumulate(q, 8, -(q[4] + q[5]))
    _add_point(q, -d, u - q[1], -1)
    _add_point(q, 0, v - q[1], 1)
    return _cancels(q[0], q[4] + q[5], q[6] + q[7])


@_helper
def _regression_recompute(q, x, j, lo, t):
    """q recomputed from the window x[lo:t + 1, j] about its mean, in place."""
    q[:] = 0.0
    q[1] = _anchored_mean(x, j, lo, t + 1)
    for r in range(lo, t + 1):
        _add_point(q, r - t, _finite(x[r, j]) - q[1], 1)


@_helper
def _regression_stat(q, stat, newest, slots):
    """Slope/Rsquare (unmasked)/Resi/WMA of the window summed in q.

    newest: the value at p = 0; slots: the number of rows in the window, NaN rows included.
    """
    n, ref, sp, spp = q[0], q[1], q[2], q[3]
    s1, s2, spy = q[4] + q[5], q[6] + q[7], q[8] + q[9]
    if stat == _WMA:
        if n == 0:
            return np.nan
        weighted = spy + ref * sp + slots * (s1 + n * ref)  # Σ (p + slots) · value
        return weighted / (slots * (slots + 1) / 2.0) / n
    if n < 2:
        return np.nan
    cov = spy - sp * s1 / n
    slope = cov / (spp - sp * sp / n)
    if stat == _SLOPE:
        return slope
    if stat == _RESI:
        return (newest - ref - s1 / n) + slope * sp / n
    return slope * cov / (s2 - s1 * s1 / n)  # _RSQUARE


@_kernel
def _regression_nb(x, d, start, stat):
    """Rolling Slope/Rsquare/Resi/WMA (stat code) of every column of x [T, N]."""
    T, N = x.shape
    out = np.empty((T, N))
    for b in prange(_n_blocks(N)):
        j0 = b * _BLOCK
        j1 = min(N, j0 + _BLOCK)
        starts = start[j0:j1]
        state = np.zeros((j1 - j0, 10))
        spread = np.zeros((j1 - j0, 6))  # pandas' roll_var states, for the Rsquare mask
        for t in range(T):
            row, old, dst = x[t, j0:j1], x[max(t - d, 0), j0:j1], out[t, j0:j1]
            for k in range(j1 - j0):
                s0 = starts[k]
                if t < s0:
                    dst[k] = np.nan
                    continue
                lo = _window_start(t, s0, d)
                q = state[k]
                v, u = _finite(row[k]), _leaving(old[k], t, s0, d)
                if _regression_update(q, v, u, d):
                    _regression_recompute(q, x, j0 + k, lo, t)
                dst[k] = _regression_stat(q, stat, v, t - lo + 1)
                if stat == _RSQUARE:
                    w = spread[k]
                    if _roll_var_update(w, v, u, t == s0 or d == 1):
                        _roll_var_recompute(w, x, j0 + k, lo, t + 1)
                    if _std_masked(w):
                        dst[k] = np.nan
    return out


def rolling_slope(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.apply(f, raw=True)``, f: OLS slope of the non-NaN values on their slot position."""
    x = _panel(x)
    return _regression_nb(x, _window(d), _starts(start, x), _SLOPE)


def rolling_rsquare(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.apply(f, raw=True)``, f: r² of (position, value); NaN where ``|r.std()| <= 2e-5``."""
    x = _panel(x)
    return _regression_nb(x, _window(d), _starts(start, x), _RSQUARE)


def rolling_resi(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.apply(f, raw=True)``, f: residual of the newest value from the OLS line on position."""
    x = _panel(x)
    return _regression_nb(x, _window(d), _starts(start, x), _RESI)


def rolling_wma(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.apply(lambda a: np.nanmean(a * w), raw=True)``, ``w = arange(1, n+1) / sum(1..n)``."""
    x = _panel(x)
    return _regression_nb(x, _window(d), _starts(start, x), _WMA)


# --------------------------------------------------------------------------------------------------
# Cov, Corr over the rows where both series are present. State
# q = [n, rx, ry, Σdx, err, Σdy, err, Σdx², err, Σdy², err, Σdx·dy, err] (deviations from rx, ry).


@_helper
def _add_pair(q, vx, vy, sign):
    """Add (sign=1) or remove (sign=-1) the pair (vx, vy) to q, in place, if both are present."""
    if np.isnan(vx) or np.isnan(vy):
        return
    q[0] += sign
    if q[0] == 0.0:
        q[3:] = 0.0
        return
    dx = vx - q[1]
    dy = vy - q[2]
    _accumulate(q, 3, sign * dx)
    _accumulate(q, 5, sign * dy)
    _accumulate(q, 7, sign * dx * dx)
    _accumulate(q, 9, sign * dy * dy)
    _accumulate(q, 11, sign * dx * dy)


@_helper
def _pair_update(q, vx, vy, ux, uy):
    """Remove the pair (ux, uy) and add (vx, vy); True when the window must be recomputed."""
    _add_pair(q, ux, uy, -1)
    _add_pair(q, vx, vy, 1)
    n, sx, sy = q[0], q[3] + q[4], q[5] + q[6]
    return _cancels(n, sx, q[7] + q[8]) or _cancels(n, sy, q[9] + q[10])


@_helper
def _pair_recompute(q, x, y, j, lo, hi):
    """q recomputed from the pairs of x[lo:hi, j], y[lo:hi, j] about their means, in place."""
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
    q[:] = 0.0
    if n:
        q[1], q[2] = ax + sx / n, ay + sy / n
    for r in range(lo, hi):
        _add_pair(q, _finite(x[r, j]), _finite(y[r, j]), 1)


@_helper
def _pair_stat(q, stat):
    """Cov (ddof=1) or Corr (unmasked) of the pairs summed in q."""
    n = q[0]
    if n < 2:
        return np.nan
    sx, sy, sxx, syy, sxy = q[3] + q[4], q[5] + q[6], q[7] + q[8], q[9] + q[10], q[11] + q[12]
    cov = sxy - sx * sy / n
    if stat == _COV:
        return cov / (n - 1)
    vx = sxx - sx * sx / n
    vy = syy - sy * sy / n
    return cov / np.sqrt(vx * vy) if vx > 0.0 and vy > 0.0 else np.nan


@_kernel
def _pair_nb(x, y, d, start, stat):
    """Rolling Cov/Corr (stat code) of every column pair of x, y [T, N]."""
    T, N = x.shape
    out = np.empty((T, N))
    for b in prange(_n_blocks(N)):
        j0 = b * _BLOCK
        j1 = min(N, j0 + _BLOCK)
        starts = start[j0:j1]
        state = np.zeros((j1 - j0, 13))
        spread_x = np.zeros((j1 - j0, 6))  # pandas' roll_var states, for the Corr masks
        spread_y = np.zeros((j1 - j0, 6))
        for t in range(T):
            rx, ox = x[t, j0:j1], x[max(t - d, 0), j0:j1]
            ry, oy = y[t, j0:j1], y[max(t - d, 0), j0:j1]
            dst = out[t, j0:j1]
            for k in range(j1 - j0):
                s0 = starts[k]
                if t < s0:
                    dst[k] = np.nan
                    continue
                lo = _window_start(t, s0, d)
                vx, ux = _finite(rx[k]), _leaving(ox[k], t, s0, d)
                vy, uy = _finite(ry[k]), _leaving(oy[k], t, s0, d)
                q = state[k]
                if _pair_update(q, vx, vy, ux, uy):
                    _pair_recompute(q, x, y, j0 + k, lo, t + 1)
                dst[k] = _pair_stat(q, stat)
                if stat == _CORR:
                    fresh = t == s0 or d == 1
                    wx, wy = spread_x[k], spread_y[k]
                    if _roll_var_update(wx, vx, ux, fresh):
                        _roll_var_recompute(wx, x, j0 + k, lo, t + 1)
                    if _roll_var_update(wy, vy, uy, fresh):
                        _roll_var_recompute(wy, y, j0 + k, lo, t + 1)
                    if _std_masked(wx) or _std_masked(wy):
                        dst[k] = np.nan
    return out


def _pair(x: np.ndarray, y: np.ndarray, d: int, start: np.ndarray, stat: int) -> np.ndarray:
    x, y = _panel(x), _panel(y)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in shape: {x.shape} vs {y.shape}")
    return _pair_nb(x, y, _window(d), _starts(start, x), stat)


def rolling_cov(x: np.ndarray, y: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``rx.cov(sy)`` (pairs where both are present, ddof=1)."""
    return _pair(x, y, d, start, _COV)


def rolling_corr(x: np.ndarray, y: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``rx.corr(sy)``, NaN where ``|rx.std()| <= 2e-5`` or ``|ry.std()| <= 2e-5`` (Qlib)."""
    return _pair(x, y, d, start, _CORR)


# --------------------------------------------------------------------------------------------------
# Median, quantile, rank: each window's non-NaN values kept sorted


@_helper
def _search(buf, m, v, right):
    """Insertion point of v in the sorted buf[:m]: before equal values, or after them if right."""
    lo, hi = 0, m
    while lo < hi:
        mid = (lo + hi) // 2
        if buf[mid] < v or (right and buf[mid] == v):
            lo = mid + 1
        else:
            hi = mid
    return lo


@_helper
def _sorted_update(buf, m, v, u):
    """Remove u (present unless NaN) from and insert v (unless NaN) into the sorted buf[:m], in
    place; returns the new length."""
    if not np.isnan(u):
        m -= 1
        for i in range(_search(buf, m, u, False), m):
            buf[i] = buf[i + 1]
    if not np.isnan(v):
        k = _search(buf, m, v, False)
        for i in range(m, k, -1):
            buf[i] = buf[i - 1]
        buf[k] = v
        m += 1
    return m


@_helper
def _order_stat(buf, m, stat, q, newest):
    """Median, quantile q (linear) or pct-rank of newest (average ties) of the sorted buf[:m]."""
    if m == 0:
        return np.nan
    if stat == _RANK:
        if np.isnan(newest):
            return np.nan
        below = _search(buf, m, newest, False)
        return (below + (_search(buf, m, newest, True) - below + 1) / 2.0) / m
    if stat == _MEDIAN:
        h = m // 2
        return buf[h] if m % 2 else (buf[h - 1] + buf[h]) / 2.0
    pos = q * (m - 1)  # _QUANTILE
    k = int(pos)
    if pos == k:
        return buf[k]
    return buf[k] + (buf[k + 1] - buf[k]) * (pos - k)


@_kernel
def _order_nb(x, d, start, stat, q):
    """Rolling median/quantile/rank (stat code) of every column of x [T, N]."""
    T, N = x.shape
    out = np.empty((T, N))
    for b in prange(_n_blocks(N)):
        j0 = b * _BLOCK
        j1 = min(N, j0 + _BLOCK)
        starts = start[j0:j1]
        values = np.empty((j1 - j0, d if d > 0 else T))
        size = np.zeros(j1 - j0, np.int64)
        for t in range(T):
            row, old, dst = x[t, j0:j1], x[max(t - d, 0), j0:j1], out[t, j0:j1]
            for k in range(j1 - j0):
                s0 = starts[k]
                if t < s0:
                    dst[k] = np.nan
                    continue
                v = _finite(row[k])
                buf = values[k]
                size[k] = _sorted_update(buf, size[k], v, _leaving(old[k], t, s0, d))
                dst[k] = _order_stat(buf, size[k], stat, q, v)
    return out


def _order(x: np.ndarray, d: int, start: np.ndarray, stat: int, q: float = 0.5) -> np.ndarray:
    x = _panel(x)
    return _order_nb(x, _window(d), _starts(start, x), stat, float(q))


def rolling_median(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.median()``."""
    return _order(x, d, start, _MEDIAN)


def rolling_quantile(x: np.ndarray, d: int, q: float, start: np.ndarray) -> np.ndarray:
    """``r.quantile(q)`` (linear interpolation)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    return _order(x, d, start, _QUANTILE, q)


def rolling_rank(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.rank(method="average", pct=True)`` (NaN where today's value is NaN)."""
    return _order(x, d, start, _RANK)


# --------------------------------------------------------------------------------------------------
# Max, min and their positions: per column, a monotonic deque of (row, value) and a queue of the
# window's NaN rows, both ring buffers indexed by ever-increasing head/tail counters.


@_kernel
def _extreme_nb(x, d, start, stat):
    """Rolling max/min/idxmax/idxmin (stat code) of every column of x [T, N]."""
    T, N = x.shape
    out = np.empty((T, N))
    sign = 1.0 if stat == _MAX or stat == _IDXMAX else -1.0
    capacity = 1
    while capacity < (d if d > 0 else T):
        capacity *= 2
    wrap = capacity - 1
    for b in prange(_n_blocks(N)):
        j0 = b * _BLOCK
        j1 = min(N, j0 + _BLOCK)
        starts = start[j0:j1]
        rows = np.empty((j1 - j0, capacity), np.int64)  # deque: sign·value non-increasing
        vals = np.empty((j1 - j0, capacity))
        nans = np.empty((j1 - j0, capacity), np.int64)  # NaN rows, oldest first
        ends = np.zeros((j1 - j0, 4), np.int64)  # deque head, tail; NaN queue head, tail
        for t in range(T):
            row, dst = x[t, j0:j1], out[t, j0:j1]
            for k in range(j1 - j0):
                s0 = starts[k]
                if t < s0:
                    dst[k] = np.nan
                    continue
                head, tail, nan_head, nan_tail = ends[k, 0], ends[k, 1], ends[k, 2], ends[k, 3]
                lo = _window_start(t, s0, d)
                if head < tail and rows[k, head & wrap] < lo:
                    head += 1
                if nan_head < nan_tail and nans[k, nan_head & wrap] < lo:
                    nan_head += 1
                v = _finite(row[k])
                if np.isnan(v):
                    nans[k, nan_tail & wrap] = t
                    nan_tail += 1
                else:
                    while tail > head and sign * vals[k, (tail - 1) & wrap] < sign * v:
                        tail -= 1
                    rows[k, tail & wrap] = t
                    vals[k, tail & wrap] = v
                    tail += 1
                ends[k, 0], ends[k, 1], ends[k, 2], ends[k, 3] = head, tail, nan_head, nan_tail
                if head == tail:
                    dst[k] = np.nan
                elif stat == _MAX or stat == _MIN:
                    dst[k] = vals[k, head & wrap]
                elif nan_head < nan_tail:
                    dst[k] = nans[k, nan_head & wrap] - lo + 1
                else:
                    dst[k] = rows[k, head & wrap] - lo + 1
    return out


def _extreme(x: np.ndarray, d: int, start: np.ndarray, stat: int) -> np.ndarray:
    x = _panel(x)
    return _extreme_nb(x, _window(d), _starts(start, x), stat)


def rolling_max(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.max()``."""
    return _extreme(x, d, start, _MAX)


def rolling_min(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.min()``."""
    return _extreme(x, d, start, _MIN)


def rolling_idxmax(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.apply(lambda a: a.argmax() + 1, raw=True)`` (the first NaN slot wins, as in numpy)."""
    return _extreme(x, d, start, _IDXMAX)


def rolling_idxmin(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.apply(lambda a: a.argmin() + 1, raw=True)`` (the first NaN slot wins, as in numpy)."""
    return _extreme(x, d, start, _IDXMIN)


# --------------------------------------------------------------------------------------------------
# Mean absolute deviation: two scans of the window per row


@_kernel
def _mad_nb(x, d, start):
    """Rolling mean absolute deviation from the window mean of every column of x [T, N]."""
    T, N = x.shape
    out = np.empty((T, N))
    for b in prange(_n_blocks(N)):
        for t in range(T):
            for j in range(b * _BLOCK, min(N, (b + 1) * _BLOCK)):
                s0 = start[j]
                n, anchor, total = 0, 0.0, 0.0
                for r in range(_window_start(t, s0, d), t + 1):
                    v = _finite(x[r, j])
                    if not np.isnan(v):
                        anchor = v if n == 0 else anchor
                        total += v - anchor
                        n += 1
                mean = anchor + total / n
                dev = 0.0
                for r in range(_window_start(t, s0, d), t + 1):
                    v = _finite(x[r, j])
                    if not np.isnan(v):
                        dev += abs(v - mean)
                out[t, j] = dev / n if n and t >= s0 else np.nan
    return out


def rolling_mad(x: np.ndarray, d: int, start: np.ndarray) -> np.ndarray:
    """``r.apply(lambda a: np.mean(np.abs(b - b.mean())), raw=True)``, ``b = a[~np.isnan(a)]``."""
    x = _panel(x)
    return _mad_nb(x, _window(d), _starts(start, x))


# --------------------------------------------------------------------------------------------------
# Exponentially weighted mean


@_kernel
def _ewm_nb(x, alpha, start):
    """pandas' ewm(alpha=alpha, adjust=True, ignore_na=False).mean() of every column of x."""
    T, N = x.shape
    out = np.empty((T, N))
    keep = 1.0 - alpha
    for b in prange(_n_blocks(N)):
        j0 = b * _BLOCK
        j1 = min(N, j0 + _BLOCK)
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
    return out


def ewm_mean(x: np.ndarray, n: float, start: np.ndarray) -> np.ndarray:
    """``s.ewm(span=n, min_periods=1).mean()`` for n >= 1, ``s.ewm(alpha=n, …)`` for 0 < n < 1."""
    if n >= 1:
        com = (n - 1.0) / 2.0
    elif n > 0:
        com = 1.0 / n - 1.0
    else:
        raise ValueError(f"ewm_mean needs n >= 1 (span) or 0 < n < 1 (alpha), got {n}")
    x = _panel(x)
    return _ewm_nb(x, 1.0 / (1.0 + com), _starts(start, x))


# --------------------------------------------------------------------------------------------------
# Shift


@_kernel
def _shift_nb(x, n, start):
    """x shifted n rows within each column's series (n == 0: the series' first value)."""
    T, N = x.shape
    out = np.empty_like(x)
    for t in prange(T):
        for j in range(N):
            s0 = start[j]
            r = s0 if n == 0 else t - n
            out[t, j] = x[r, j] if t >= s0 and s0 <= r < T else np.nan
    return out


def shift(x: np.ndarray, n: int, start: np.ndarray) -> np.ndarray:
    """``s.shift(n)``; n == 0 gives ``s.iloc[0]`` on every row (Qlib ``Ref(x, 0)``); keeps dtype."""
    x = _panel(x)
    return _shift_nb(x, int(n), _starts(start, x))
