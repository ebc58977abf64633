"""A synthetic daily stock market in Qlib's format, generated from a seed.

The market follows the conventions of ``shared/data/cn_csi300`` (see its README): adjusted
prices = raw × ``factor``, ``volume`` = raw shares / ``factor``, ``amount`` = raw turnover,
``vwap`` inside ``[low, high]``, ``change`` = adjusted close / previous trading row's adjusted
close − 1 (NaN only on a stock's listing day), suspended days are all-NaN rows inside a stock's
stored span.

What is simulated (each stock-day, vectorized over stocks):

- returns = beta × market (with volatility clustering) + sector + fat-tailed idiosyncratic shock
  + short-term reversal of the last ``REV_DAYS`` idiosyncratic shocks + a low-volatility drift
  (calmer stocks drift up; volatility varies slowly, so it is visible in the price history);
- ±10% daily price limits on raw prices rounded to 0.01 (limit days give ``change`` ≈ ±0.1);
- suspensions (the missed move is applied, within the limit, on the resumption day), listings
  after the calendar start, delistings before its end;
- dividends and bonus-share splits: the raw price drops to the ex-rights reference price and
  ``factor`` steps so that adjusted prices stay continuous;
- volume (turnover × shares outstanding) that rises with |return|;
- a membership market of the ``n_members`` largest, most traded stocks, rebalanced each January
  and July, and a cap-weighted benchmark index over it (``factor`` 1, ``vwap`` NaN).

>>> panel = synth_market(seed=1, n_instruments=30, start="2019-01-01", end="2019-12-31")
>>> panel.shape[1]                                  # 30 stocks + the benchmark
31
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alstm.data.panel import Panel
from alstm.data.writer import write_qlib_dir

FIELDS = ("open", "high", "low", "close", "volume", "amount", "vwap", "factor", "change")

BURN_IN = 80  # simulated days before the calendar, so trailing windows and first ranks have history
LIMIT = 0.10  # daily price limit on the raw price, as a fraction of the reference price
N_SECTORS = 10
REV_DAYS = 8  # the reversal undoes part of the idiosyncratic shocks of this many past days
REV_KAPPA = 0.03  # share of each past shock undone per day (sets the reversal signal's IC)
LOWVOL_LAMBDA = 0.0012  # daily drift per unit of (demeaned) log idiosyncratic volatility
LIST_SHARE = 0.3  # share of stocks listed after the calendar start
DELIST_SHARE = 0.08  # share of stocks delisted before the calendar end
SPLIT_MIN_PRICE = 8.0  # bonus shares are issued only by stocks priced above this (raw)
DELIST_PRICE, DELIST_DAYS = 1.0, 20  # the exchange's 1-yuan rule
MEMBER_WINDOW = 60  # trailing rows used to rank stocks for membership
MEMBER_BUFFER = 1.2  # members stay while ranked within this multiple of n_members


def synth_market(
    seed: int = 0,
    n_instruments: int = 300,
    start: str | pd.Timestamp = "2014-01-01",
    end: str | pd.Timestamp = "2020-12-31",
    market: str = "syn100",
    n_members: int = 100,
    benchmark: str = "SYN100",
) -> Panel:
    """Panel ``[T, n_instruments + 1]`` of the 9 Qlib fields for a synthetic market, with one
    membership mask (``market``) and the benchmark index as an extra instrument."""
    if n_instruments < 2 or not 0 < n_members <= n_instruments:
        raise ValueError(
            f"need n_instruments >= 2 and 0 < n_members <= n_instruments, got "
            f"{n_instruments} and {n_members}"
        )
    rng = np.random.default_rng(seed)
    calendar = _calendar(rng, pd.Timestamp(start), pd.Timestamp(end))
    T, N = len(calendar) + BURN_IN, n_instruments
    if len(calendar) < 2 * MEMBER_WINDOW:
        raise ValueError(f"calendar {start} .. {end} has {len(calendar)} days; need at least 120")
    symbols = _symbols(rng, N)
    born, dies = _lifetimes(rng, T, N)
    alive = _between(T, born, dies)
    trading = alive & ~_suspensions(rng, T, N)
    trading[born, np.arange(N)] = True  # a stock trades on its listing day
    sector = rng.integers(0, N_SECTORS, N)
    ret, vol = _latent_returns(rng, T, N, sector)
    dividend, split = _corporate_actions(rng, calendar, N)
    raw = _simulate_quotes(rng, ret, vol, trading, dividend, split)
    member = _membership(raw, calendar, n_members)
    fields = _adjusted_fields(raw, born)
    bench = _benchmark(fields, raw, member)

    # drop the burn-in; the stored span is the first .. last trading row inside the calendar
    cut = slice(BURN_IN, None)
    fields = {f: a[cut] for f, a in fields.items()}
    member = member[cut]
    traded = ~np.isnan(fields["close"])
    first = np.where(traded.any(0), traded.argmax(0), -1)
    last = np.where(traded.any(0), len(calendar) - 1 - traded[::-1].argmax(0), -1)

    # the benchmark joins as one more column; instruments are sorted; a stock that never trades
    # inside the calendar (delisted during the burn-in) is left out, as Qlib stores nothing for it
    names = np.asarray([*symbols, benchmark])
    order = np.argsort(names, kind="stable")
    order = order[np.concatenate([first >= 0, [True]])[order]]
    instruments = tuple(str(s) for s in names[order])
    out = {
        f: np.concatenate([fields[f], bench[f][cut, None]], axis=1)[:, order].astype(np.float32)
        for f in FIELDS
    }
    n_cal = len(calendar)
    first = np.concatenate([first, [0]])[order]
    last = np.concatenate([last, [n_cal - 1]])[order]
    mask = np.concatenate([member, np.zeros((n_cal, 1), bool)], axis=1)[:, order]
    return Panel(calendar, instruments, out, first, last, {market: mask})


def write_synth(dst: str | Path, seed: int = 0, overwrite: bool = False, **kwargs: Any) -> Path:
    """Write :func:`synth_market` (``seed``, ``kwargs``) to ``dst`` as a Qlib data directory."""
    return write_qlib_dir(synth_market(seed, **kwargs), dst, overwrite=overwrite)


# ----------------------------------------------------------------------------------- calendar


def _calendar(rng: np.random.Generator, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """Business days minus New Year, a spring-festival week, Labour Day and National Day week."""
    days = pd.bdate_range(start, end)
    holidays: list[pd.Timestamp] = []
    for year in range(start.year, end.year + 1):
        holidays += [pd.Timestamp(year, 1, 1), pd.Timestamp(year, 5, 1)]
        holidays += list(pd.date_range(pd.Timestamp(year, 10, 1), periods=7))
        festival = pd.Timestamp(year, 1, 21) + pd.Timedelta(days=int(rng.integers(0, 25)))
        holidays += list(pd.bdate_range(festival, periods=5))
    return pd.DatetimeIndex(days.difference(pd.DatetimeIndex(holidays)), name=None)


def _symbols(rng: np.random.Generator, n: int) -> list[str]:
    """Distinct SH60xxxx / SZ000xxx / SZ002xxx / SZ300xxx symbols, about half on each exchange."""
    pools = (("SH", 600000, 604000), ("SZ", 1, 3000), ("SZ", 300001, 301000))
    counts = rng.multinomial(n, [0.5, 0.35, 0.15])
    out: list[str] = []
    for (prefix, lo, hi), k in zip(pools, counts, strict=True):
        codes = rng.choice(np.arange(lo, hi), size=k, replace=False)
        out += [f"{prefix}{c:06d}" for c in codes]
    return sorted(out)


def _lifetimes(rng: np.random.Generator, T: int, N: int) -> tuple[np.ndarray, np.ndarray]:
    """``(born, dies)``: each stock's first and last simulated row (int [N])."""
    n_cal = T - BURN_IN
    born = np.zeros(N, dtype=np.int64)
    late = rng.random(N) < LIST_SHARE
    born[late] = rng.integers(BURN_IN + 1, BURN_IN + 1 + 3 * n_cal // 4, late.sum())
    dies = np.full(N, T - 1, dtype=np.int64)
    gone = rng.random(N) < DELIST_SHARE
    # a delisted stock trades at least a quarter of the calendar (up to a year) inside it
    lo = np.maximum(born, BURN_IN) + min(245, n_cal // 4)
    hi = np.maximum(lo + 1, T - 20)
    dies[gone] = lo[gone] + (rng.random(gone.sum()) * (hi - lo)[gone]).astype(np.int64)
    return born, np.minimum(dies, T - 1)


def _between(T: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Boolean ``[T, N]``: ``lo[j] <= row <= hi[j]``."""
    rows = np.arange(T)[:, None]
    return (rows >= lo[None]) & (rows <= hi[None])


def _suspensions(rng: np.random.Generator, T: int, N: int) -> np.ndarray:
    """Boolean ``[T, N]`` of suspended rows: short runs (mean ~6 days) plus a few long ones."""
    susp = np.zeros((T, N), dtype=bool)
    n_runs = rng.poisson(0.6 * T / 245, N)
    n_long = (rng.random(N) < 0.12).astype(np.int64)
    for j in range(N):
        starts = rng.integers(0, T, n_runs[j] + n_long[j])
        lengths = 1 + rng.geometric(0.18, len(starts))
        lengths[n_runs[j] :] = rng.integers(40, 160, n_long[j])
        for s, length in zip(starts, lengths, strict=True):
            susp[s : s + length, j] = True
    return susp


# ------------------------------------------------------------------------------------ returns


def _ar1(rng: np.random.Generator, T: int, N: int, phi: float, sd: float) -> np.ndarray:
    """Stationary AR(1) paths ``[T, N]`` with coefficient ``phi`` and marginal std ``sd``."""
    x = np.empty((T, N))
    x[0] = sd * rng.standard_normal(N)
    eps = sd * np.sqrt(1 - phi**2) * rng.standard_normal((T, N))
    for t in range(1, T):
        x[t] = phi * x[t - 1] + eps[t]
    return x


def _latent_returns(
    rng: np.random.Generator, T: int, N: int, sector: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(ret, vol)``: the day's intended simple return and idiosyncratic volatility, ``[T, N]``."""
    mkt_vol = 0.012 * np.exp(_ar1(rng, T, 1, phi=0.98, sd=0.3)[:, 0])
    market = 0.0003 + mkt_vol * rng.standard_normal(T)
    sectors = 0.007 * rng.standard_normal((T, N_SECTORS))
    beta = rng.uniform(0.6, 1.4, N)
    log_vol = np.log(0.017) + 0.25 * rng.standard_normal(N) + _ar1(rng, T, N, phi=0.995, sd=0.25)
    vol = np.exp(log_vol)
    shock = vol * rng.standard_t(4, (T, N)) / np.sqrt(2.0)  # t(4) has variance 2
    jump = rng.random((T, N)) < 0.002
    shock += jump * rng.normal(0.0, 0.06, (T, N))
    # reversal: part of each idiosyncratic shock is undone over the next REV_DAYS days
    csum = np.vstack([np.zeros((1, N)), np.cumsum(shock, axis=0)])
    past = csum[:-1] - csum[np.maximum(np.arange(T) - REV_DAYS, 0)]  # shocks of rows t-8 .. t-1
    # low-volatility anomaly: calmer stocks (cross-sectionally) drift up
    drift = -LOWVOL_LAMBDA * (log_vol - log_vol.mean(axis=1, keepdims=True))
    ret = beta * market[:, None] + sectors[:, sector] + shock - REV_KAPPA * past + drift
    return np.maximum(ret, -0.5), vol


def _corporate_actions(
    rng: np.random.Generator, calendar: pd.DatetimeIndex, N: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(dividend, split)`` ``[T, N]``: 1 − dividend yield on ex-dates and the bonus-share ratio
    on split dates (1 elsewhere)."""
    T = len(calendar) + BURN_IN
    dividend = np.ones((T, N))
    split = np.ones((T, N))
    years = calendar.year.to_numpy()
    months = calendar.month.to_numpy()
    for year in np.unique(years):
        summer = np.nonzero((years == year) & ((months == 6) | (months == 7)))[0] + BURN_IN
        if len(summer):  # annual cash dividend, yield 0.5% .. 4%
            pays = np.nonzero(rng.random(N) < 0.7)[0]
            rows = rng.choice(summer, size=len(pays))
            dividend[rows, pays] = 1 - rng.uniform(0.005, 0.04, len(pays))
        in_year = np.nonzero(years == year)[0] + BURN_IN
        splits = np.nonzero(rng.random(N) < 0.08)[0]
        rows = rng.choice(in_year, size=len(splits))
        split[rows, splits] = rng.choice([1.2, 1.3, 1.5, 2.0], size=len(splits))
    return dividend, split


# ------------------------------------------------------------------------------------- quotes


@dataclass(frozen=True)
class _Raw:
    """Raw (unadjusted) quotes ``[T, N]`` float64, NaN on rows without trading."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    vwap: np.ndarray
    volume: np.ndarray  # shares
    factor: np.ndarray
    shares: np.ndarray  # shares outstanding


def _tick(x: np.ndarray) -> np.ndarray:
    return np.round(x, 2)


def _simulate_quotes(
    rng: np.random.Generator,
    ret: np.ndarray,
    vol: np.ndarray,
    trading: np.ndarray,
    dividend: np.ndarray,
    split: np.ndarray,
) -> _Raw:
    """Raw OHLC/vwap on a 0.01 tick within ±10% of the reference price, volume, factor, shares.

    Day by day (prices depend on yesterday's rounded close); on suspended days the intended
    return and any corporate action accumulate and are applied on the resumption day. Splits
    happen only above ``SPLIT_MIN_PRICE`` and a stock closing below ``DELIST_PRICE`` for
    ``DELIST_DAYS`` trading days is delisted, which keeps raw prices in a realistic range.
    """
    T, N = ret.shape
    nan = np.full((T, N), np.nan)
    o, h, lo, c, vw, fac = (nan.copy() for _ in range(6))
    shares = np.empty((T, N))
    gap = rng.standard_normal((T, N))
    wick_up, wick_dn = np.abs(rng.standard_normal((2, T, N)))
    vwap_noise = rng.standard_normal((T, N))
    prev = _tick(np.exp(rng.normal(np.log(12.0), 0.6, N)))  # listing / initial raw price
    prev = np.maximum(prev, 2.0)
    factor = np.exp(rng.uniform(0.0, 1.5, N))  # level left by corporate actions before the start
    n_shares = np.exp(rng.normal(np.log(1.5e9), 0.8, N))
    started = np.zeros(N, dtype=bool)
    pend_ret = np.zeros(N)  # intended return accumulated while suspended
    pend_adj = np.ones(N)  # ex-rights adjustment accumulated while suspended
    cheap_days = np.zeros(N, dtype=np.int64)
    listed = np.ones(N, dtype=bool)
    for t in range(T):
        ratio = np.where(prev * pend_adj >= SPLIT_MIN_PRICE, split[t], 1.0)
        pend_adj *= dividend[t] / ratio
        n_shares *= ratio
        shares[t] = n_shares
        live = trading[t] & listed
        new = live & ~started
        factor[new] = 1.0  # a listing's factor starts at 1, as in the real data
        pend_ret = np.where(started, (1 + pend_ret) * (1 + ret[t]) - 1, 0.0)
        pend_adj[new] = 1.0
        ref = np.where(pend_adj != 1.0, _tick(prev * pend_adj), prev)
        ref = np.maximum(ref, 0.01)
        factor = np.where(live, factor * prev / ref, factor)
        up, dn = _tick(ref * (1 + LIMIT)), _tick(ref * (1 - LIMIT))
        close = np.clip(_tick(ref * (1 + pend_ret)), dn, up)
        day = close / ref - 1
        opn = np.clip(_tick(ref * (1 + 0.3 * day + 0.3 * vol[t] * gap[t])), dn, up)
        high = np.minimum(_tick(np.maximum(opn, close) * (1 + 0.5 * vol[t] * wick_up[t])), up)
        low = np.maximum(_tick(np.minimum(opn, close) * (1 - 0.5 * vol[t] * wick_dn[t])), dn)
        vwap = np.clip((opn + high + low + 2 * close) / 5 * (1 + 0.001 * vwap_noise[t]), low, high)
        for arr, val in ((o, opn), (h, high), (lo, low), (c, close), (vw, vwap), (fac, factor)):
            arr[t, live] = val[live]
        prev = np.where(live, close, prev)
        started |= live
        cheap_days = np.where(live, np.where(close < DELIST_PRICE, cheap_days + 1, 0), cheap_days)
        listed &= cheap_days < DELIST_DAYS
        pend_ret[live] = 0.0
        pend_adj[live] = 1.0
    volume = _volume(rng, c, fac, vol, shares)
    return _Raw(o, h, lo, c, vw, volume, fac, shares)


def _volume(
    rng: np.random.Generator,
    close: np.ndarray,
    factor: np.ndarray,
    vol: np.ndarray,
    shares: np.ndarray,
) -> np.ndarray:
    """Raw shares traded ``[T, N]``: turnover × shares outstanding, higher on big-move days."""
    T, N = close.shape
    adj = close * factor
    prev = pd.DataFrame(adj).ffill().shift(1).to_numpy()
    move = np.nan_to_num(np.abs(adj / prev - 1) / vol, nan=1.0)
    log_turn = (
        np.log(0.008)
        + 0.5 * rng.standard_normal(N)  # stock's usual turnover
        + _ar1(rng, T, 1, phi=0.97, sd=0.3)  # market-wide activity
        + _ar1(rng, T, N, phi=0.9, sd=0.3)  # stock's activity
        + 0.35 * np.minimum(move, 6.0)
        + 0.2 * rng.standard_normal((T, N))
    )
    volume = np.maximum(np.round(shares * np.exp(log_turn) / 100) * 100, 100.0)
    return np.where(np.isnan(close), np.nan, volume)


def _adjusted_fields(raw: _Raw, born: np.ndarray) -> dict[str, np.ndarray]:
    """The 9 stored fields ``[T, N]`` float64 from raw quotes (the real data's conventions)."""
    f = raw.factor
    close = raw.close * f
    prev = pd.DataFrame(close).ffill().shift(1).to_numpy()  # previous trading row, across gaps
    change = close / prev - 1
    change[born, np.arange(close.shape[1])] = np.nan  # first row of the whole history
    return {
        "open": raw.open * f,
        "high": raw.high * f,
        "low": raw.low * f,
        "close": close,
        "volume": raw.volume / f,
        "amount": raw.vwap * raw.volume,
        "vwap": raw.vwap * f,
        "factor": f.copy(),
        "change": change,
    }


# --------------------------------------------------------------------- membership, benchmark


def _membership(raw: _Raw, calendar: pd.DatetimeIndex, n_members: int) -> np.ndarray:
    """Boolean ``[T, N]``: the ``n_members`` largest and most traded stocks (trailing 60 rows),
    chosen on the first calendar day and each first trading day of January and July; members
    leave early only when delisted."""
    trading = ~np.isnan(raw.close)
    T, N = trading.shape
    last = T - 1 - trading[::-1].argmax(0)  # last trading row (delisting)
    cap = np.nan_to_num(raw.close * raw.shares)
    amount = np.nan_to_num(raw.vwap * raw.volume)
    months = calendar.month.to_numpy()
    new_half = np.nonzero((months[1:] != months[:-1]) & np.isin(months[1:], (1, 7)))[0] + 1
    rebalance = [BURN_IN, *(new_half + BURN_IN)]
    member = np.zeros((T, N), dtype=bool)
    current = np.zeros(N, dtype=bool)
    for k, r in enumerate(rebalance):
        w = slice(r - MEMBER_WINDOW, r)
        days = trading[w].sum(0)
        eligible = (days >= 2 * MEMBER_WINDOW // 3) & (last >= r)
        score = _rank(cap[w].sum(0) / np.maximum(days, 1)) + _rank(
            amount[w].sum(0) / np.maximum(days, 1)
        )
        score = np.where(eligible, score, -np.inf)
        order = np.argsort(-score, kind="stable")
        position = np.empty(N, dtype=np.int64)
        position[order] = np.arange(N)
        keep = current & eligible & (position < MEMBER_BUFFER * n_members)
        fill = [j for j in order if eligible[j] and not keep[j]][: n_members - keep.sum()]
        current = keep.copy()
        current[fill] = True
        end = rebalance[k + 1] if k + 1 < len(rebalance) else T
        member[r:end] = current
    return member & (np.arange(T)[:, None] <= last[None])


def _rank(x: np.ndarray) -> np.ndarray:
    out = np.empty(len(x))
    out[np.argsort(x, kind="stable")] = np.arange(len(x))
    return out


def _benchmark(
    fields: dict[str, np.ndarray], raw: _Raw, member: np.ndarray
) -> dict[str, np.ndarray]:
    """The cap-weighted index over members, ``[T]`` per field: level 1000 before the calendar,
    ``factor`` 1, ``vwap`` NaN, volume and amount summed over members."""
    close = fields["close"]
    prev = pd.DataFrame(close).ffill().shift(1).to_numpy()
    prev_cap = pd.DataFrame(raw.close * raw.shares).ffill().shift(1).to_numpy()
    w = np.where(member & ~np.isnan(close) & ~np.isnan(prev), prev_cap, 0.0)
    w = np.nan_to_num(w) / np.maximum(np.nan_to_num(w).sum(1, keepdims=True), 1e-12)

    def mean_move(x: np.ndarray) -> np.ndarray:
        return (w * np.nan_to_num(x / prev - 1)).sum(1)

    level = 1000.0 * np.cumprod(1 + np.where(np.arange(len(w)) < BURN_IN, 0.0, mean_move(close)))
    before = np.concatenate([[1000.0], level[:-1]])
    in_index = np.where(member, 1.0, 0.0)
    return {
        "open": before * (1 + mean_move(fields["open"])),
        "high": before * (1 + mean_move(fields["high"])),
        "low": before * (1 + mean_move(fields["low"])),
        "close": level,
        "volume": np.nansum(raw.volume * in_index, axis=1),
        "amount": np.nansum(fields["amount"] * in_index, axis=1),
        "vwap": np.full(len(w), np.nan),
        "factor": np.ones(len(w)),
        "change": level / before - 1,
    }
