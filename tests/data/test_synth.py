"""The synthetic market: Qlib conventions, realism features, a learnable signal, determinism."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alstm.data.panel import Panel
from alstm.data.provider import QlibDataDir
from alstm.data.synth import FIELDS, synth_market, write_synth

SMALL = {"n_instruments": 30, "n_members": 10, "start": "2019-01-01", "end": "2019-12-31"}


@pytest.fixture(scope="module")
def small() -> Panel:
    return synth_market(seed=3, **SMALL)


@pytest.fixture(scope="module")
def full() -> Panel:
    """The default market (about 0.3 s): enough stock-days for the statistical checks."""
    return synth_market()


def _stocks(p: Panel) -> np.ndarray:
    return np.array([s != "SYN100" for s in p.instruments])


def _prev_stored(x: np.ndarray) -> np.ndarray:
    """Previous non-NaN value of each column (across NaN gaps), float64."""
    return pd.DataFrame(x.astype(np.float64)).ffill().shift(1).to_numpy()


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_shapes_fields_and_symbols(small: Panel) -> None:
    T, N = small.shape
    assert N == 31 and 230 <= T <= 250
    assert set(small.fields) == set(FIELDS)
    assert all(a.dtype == np.float32 for a in small.fields.values())
    assert list(small.instruments) == sorted(set(small.instruments))
    stocks = [s for s in small.instruments if s != "SYN100"]
    assert all(re.fullmatch(r"SH60\d{4}|SZ00[0-2]\d{3}|SZ300\d{3}", s) for s in stocks)
    assert list(small.membership) == ["syn100"]


def test_calendar_is_business_days_minus_holidays(small: Panel) -> None:
    cal = small.calendar
    assert cal.is_monotonic_increasing and cal.is_unique
    assert (cal.day_of_week < 5).all()
    for day in ("2019-01-01", "2019-05-01", "2019-10-01", "2019-10-07"):
        assert pd.Timestamp(day) not in cal
    business = pd.bdate_range("2019-01-01", "2019-12-31")
    assert 8 <= len(business) - len(cal) <= 16  # a few holidays, not more


def test_price_conventions(full: Panel) -> None:
    s = _stocks(full)
    o, h, lo, c, vw = (
        full[f][:, s].astype(np.float64) for f in ("open", "high", "low", "close", "vwap")
    )
    fac = full["factor"][:, s].astype(np.float64)
    ok = ~np.isnan(c)
    assert (fac[ok] > 0).all() and (c[ok] > 0).all()
    assert (h[ok] >= np.maximum(o, c)[ok]).all() and (lo[ok] <= np.minimum(o, c)[ok]).all()
    assert (vw[ok] >= lo[ok]).all() and (vw[ok] <= h[ok]).all()
    raw = c[ok] / fac[ok]  # adjusted = raw × factor, raw on a 0.01 tick
    np.testing.assert_allclose(raw, np.round(raw, 2), rtol=2e-6, atol=0)
    vol = full["volume"][:, s].astype(np.float64)
    assert (vol[ok] > 0).all()
    raw_volume = vol * fac  # volume = raw shares / factor
    amount = full["amount"][:, s].astype(np.float64)
    np.testing.assert_allclose(amount[ok], (vw / fac * raw_volume)[ok], rtol=1e-5)


def test_change_is_close_over_previous_stored_close(full: Panel) -> None:
    c = full["close"]
    change = full["change"].astype(np.float64)
    expect = c.astype(np.float64) / _prev_stored(c) - 1
    inside = full.span_mask() & ~np.isnan(c)
    has_prev = inside & ~np.isnan(expect)
    np.testing.assert_allclose(change[has_prev], expect[has_prev], atol=2e-6)
    # NaN only on a stock's listing day (the first row of its whole history), so stocks that
    # trade before the calendar start have a change on their first stored row
    nan_rows = np.argwhere(inside & np.isnan(change))
    assert len(nan_rows) and all(full.first[j] == t > 0 for t, j in nan_rows)
    assert not np.isnan(change[0, full.first == 0]).any()
    assert len(nan_rows) >= 30  # the listings after the calendar start


def test_suspensions_are_all_nan_rows_inside_spans(full: Panel) -> None:
    s = _stocks(full)
    inside = full.span_mask()[:, s]
    empty = np.isnan(full["close"][:, s]) & inside
    assert 0.01 < empty.sum() / inside.sum() < 0.05
    for f in FIELDS:
        assert np.isnan(full[f][:, s][empty]).all()
        if f != "change":  # no partially-NaN rows
            assert not np.isnan(full[f][:, s][inside & ~empty]).any()
    outside = ~full.span_mask()
    assert np.isnan(full["close"][outside]).all()


def test_listings_and_delistings(full: Panel) -> None:
    s = _stocks(full)
    T = full.shape[0]
    assert (full.first[s] > 0).sum() >= 30
    assert (full.last[s] < T - 1).sum() >= 10
    assert (full.first[s] == 0).sum() >= 150


def test_price_limits(full: Panel) -> None:
    change = full["change"][:, _stocks(full)]
    ok = ~np.isnan(change)
    assert np.abs(change[ok]).max() < 0.11  # raw moves are clipped at ±10% (tick rounding aside)
    up, down = change[ok] >= 0.095, change[ok] <= -0.095
    assert up.sum() > 100 and down.sum() > 100
    assert np.median(change[ok][up]) == pytest.approx(0.1, abs=0.002)


def test_factor_events_keep_adjusted_prices_continuous(full: Panel) -> None:
    s = _stocks(full)
    fac = full["factor"][:, s].astype(np.float64)
    c = full["close"][:, s].astype(np.float64)
    step = fac / _prev_stored(fac) - 1
    events = np.abs(step) > 1e-6
    assert events.sum() > 300
    assert (step[events] > 0).all()  # dividends and bonus shares raise a backward factor
    change = c / _prev_stored(c) - 1
    assert np.abs(change[events]).max() < 0.11
    raw_move = (c / fac) / _prev_stored(c / fac) - 1
    assert (raw_move[events] < change[events]).all()  # the raw price drops on ex-dates
    assert (step[events] > 0.15).sum() > 20  # some bonus-share splits among the dividends


def test_volume_rises_with_abs_return(full: Panel) -> None:
    s = _stocks(full)
    move = np.abs(full["change"][:, s].astype(np.float64))
    logv = np.log(full["volume"][:, s].astype(np.float64))
    ok = ~np.isnan(move) & ~np.isnan(logv)
    assert np.corrcoef(move[ok], logv[ok])[0, 1] > 0.1


def test_benchmark(full: Panel) -> None:
    b = full.instruments.index("SYN100")
    T = full.shape[0]
    assert full.first[b] == 0 and full.last[b] == T - 1
    assert not np.isnan(full["close"][:, b]).any() and (full["close"][:, b] > 0).all()
    assert (full["factor"][:, b] == 1).all() and np.isnan(full["vwap"][:, b]).all()
    close = full["close"][:, b].astype(np.float64)
    np.testing.assert_allclose(full["change"][1:, b], close[1:] / close[:-1] - 1, atol=1e-6)
    assert (full["high"][:, b] >= full["close"][:, b]).all()
    assert (full["low"][:, b] <= full["close"][:, b]).all()
    assert not full.market_mask("syn100")[:, b].any()
    # the index follows its members: its daily return correlates with their mean return
    mem = full.market_mask("syn100")
    mean_ret = np.nanmean(np.where(mem, full["change"], np.nan), axis=1)
    assert np.corrcoef(full["change"][1:, b], mean_ret[1:])[0, 1] > 0.95


def test_membership_changes_over_time(full: Panel) -> None:
    mem = full.market_mask("syn100")
    counts = mem.sum(1)
    assert counts[0] == 100 and counts.max() == 100 and counts.min() >= 90
    assert mem.any(0).sum() > 120  # different stocks over time
    entry_days = full.calendar[np.nonzero((mem[1:] & ~mem[:-1]).any(1))[0] + 1]
    assert len(entry_days) >= 10  # semi-annual rebalances over 7 years
    assert set(entry_days.month) == {1, 7}
    # as in the real data, a member may be suspended from before the calendar start, so a few
    # member-days lie before its first stored row; none lies after its last one
    outside = mem & ~full.span_mask()
    assert outside.sum() < 0.001 * mem.sum()
    rows = np.arange(len(full.calendar))[:, None]
    assert not (mem & (rows > full.last[None])).any()


def _rank_ic(signal: np.ndarray, label: np.ndarray, mask: np.ndarray) -> float:
    """Mean over days of the cross-sectional Spearman correlation on ``mask``."""
    both = mask & ~np.isnan(signal) & ~np.isnan(label)
    s = pd.DataFrame(np.where(both, signal, np.nan)).rank(axis=1)
    y = pd.DataFrame(np.where(both, label, np.nan)).rank(axis=1)
    return float(s.corrwith(y, axis=1).mean())


def test_reversal_signal_has_a_weak_positive_rank_ic(full: Panel) -> None:
    c = full["close"].astype(np.float64)
    label = np.full_like(c, np.nan)
    label[:-2] = c[2:] / c[1:-1] - 1  # Ref(C,-2)/Ref(C,-1) - 1
    signal = np.full_like(c, np.nan)
    signal[5:] = -(c[5:] / c[:-5] - 1)  # -(5-day return)
    ic = _rank_ic(signal, label, full.market_mask("syn100"))
    assert 0.03 < ic < 0.08


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = write_synth(tmp_path / "a", seed=5, **SMALL)
    b = write_synth(tmp_path / "b", seed=5, **SMALL)
    c = write_synth(tmp_path / "c", seed=6, **SMALL)
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert ha == hb and len(ha) == 31 * 9 + 3
    assert ha != hc


def test_round_trip_through_qlib_data_dir(tmp_path: Path, small: Panel) -> None:
    root = write_synth(tmp_path / "syn", seed=3, **SMALL)
    data = QlibDataDir(root)
    assert data.markets() == ["all", "syn100"]
    assert data.instruments() == small.instruments
    loaded = data.load(list(FIELDS), markets=["syn100"], instruments=list(small.instruments))
    assert loaded.calendar.equals(small.calendar)
    np.testing.assert_array_equal(loaded.first, small.first)
    np.testing.assert_array_equal(loaded.last, small.last)
    for f in FIELDS:
        np.testing.assert_array_equal(loaded[f], small[f])
    np.testing.assert_array_equal(loaded.market_mask("syn100"), small.market_mask("syn100"))


def test_write_refuses_existing_dir(tmp_path: Path) -> None:
    from alstm.data.errors import DataError

    write_synth(tmp_path / "syn", seed=1, **SMALL)
    with pytest.raises(DataError, match="already exists"):
        write_synth(tmp_path / "syn", seed=1, **SMALL)
    write_synth(tmp_path / "syn", seed=2, overwrite=True, **SMALL)


@pytest.mark.parametrize(
    "kwargs", [{"n_instruments": 1}, {"n_members": 0}, {"n_members": 50, "n_instruments": 30}]
)
def test_bad_sizes(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        synth_market(**{**SMALL, **kwargs})


def test_short_calendar_is_rejected() -> None:
    with pytest.raises(ValueError, match="need at least"):
        synth_market(start="2019-01-01", end="2019-03-01")
