"""Backtest on a hand-made 3-stock market, every number checked by hand."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from alstm.data.errors import DataError
from alstm.data.panel import Panel
from alstm.evaluate import Exchange, ExchangeRules, TopkDropout, backtest

NAN = np.nan
DAYS = pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07", "2020-01-08"])
NAMES = ("A", "B", "C", "SH000300")
# Rows d0..d4 (d0 is the day before the backtest), columns A, B, C, benchmark. Prices are
# adjusted; B has factor 2 (raw price = half). C hits limit-up on d1 (+10 %) and is suspended on d3.
CLOSE = [
    [10.0, 20.0, 5.0, 100.0],
    [10.0, 20.0, 5.5, 101.0],
    [10.5, 21.0, 5.5, 100.0],
    [10.5, 22.0, NAN, 102.0],
    [11.0, 22.0, 6.0, 102.0],
]
CHANGE = [
    [0.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, 0.10, 0.01],
    [0.05, 0.05, 0.0, -0.0099],
    [0.0, 0.0476, NAN, 0.02],
    [0.0476, 0.0, 0.0909, 0.0],
]
FACTOR = [[1.0, 2.0, 1.0, 1.0]] * 5


def make_panel(close=CLOSE, change=CHANGE, factor=FACTOR, names=NAMES) -> Panel:
    fields = {
        "close": np.array(close, dtype=np.float32),
        "change": np.array(change, dtype=np.float32),
        "factor": np.array(factor, dtype=np.float32),
    }
    n = len(names)
    return Panel(DAYS, names, fields, np.zeros(n, np.int64), np.full(n, len(DAYS) - 1))


def make_pred(rows: dict[str, dict[str, float]]) -> pd.Series:
    items = [(pd.Timestamp(d), s, v) for d, scores in rows.items() for s, v in scores.items()]
    idx = pd.MultiIndex.from_tuples([(d, s) for d, s, _ in items], names=["datetime", "instrument"])
    return pd.Series([v for *_, v in items], idx, name="score")


PRED = make_pred(
    {
        "2020-01-02": {"A": 0.2, "B": 0.1, "C": 0.3},
        "2020-01-03": {"A": 0.1, "B": 0.3, "C": 0.2},
        "2020-01-06": {"A": 0.3, "B": 0.2, "C": 0.1},
        "2020-01-07": {"A": 0.2, "B": 0.3},  # C has no score: it ranks last
    }
)
STRATEGY = TopkDropout(topk=2, n_drop=1)


def run(pred=PRED, panel=None, strategy=STRATEGY, **kw):
    panel = panel or make_panel()
    return backtest(
        pred, panel, "2020-01-03", "2020-01-08", strategy=strategy, account=10_000, **kw
    )


@pytest.fixture(scope="module")
def result():
    return run()


def test_report_by_hand(result) -> None:
    """
    d1: buy [C, A] with 10000·0.95/2 = 4750 each; C is limit-up → skipped. A: 475 shares → 400
        (lot of 100), value 4000, cost max(2, 5) = 5 (min_cost) → cash 5995.
    d2: sell A (worst of held ∪ new): 400·10.5 = 4200, cost 4200·0.0015 = 6.3 → cash 10188.7;
        buy [B, C] with 10188.7·0.95/2 = 4839.6325 each. B: 230.46 adj = 460.9 raw shares
        (factor 2) → 400 raw = 200 adj, value 4200, cost 5; C: 879.9 → 800, value 4400, cost 5
        → cash 1578.7.
    d3: sell C wanted but C is suspended (kept, valued at its last close 5.5); buy A with
        1578.7·0.95 = 1499.765: 142.8 → 100, value 1050, cost 5 → cash 523.7 (3 stocks > topk).
    d4: sell C (no score → last): 800·6 = 4800, cost 7.2 → cash 5316.5; no buy (3 held).
    """
    rep = result.report
    assert list(rep.index) == list(DAYS[1:])
    np.testing.assert_allclose(rep["cash"], [5995.0, 1578.7, 523.7, 5316.5])
    np.testing.assert_allclose(rep["value"], [4000.0, 8600.0, 9850.0, 5500.0])
    np.testing.assert_allclose(rep["account"], [9995.0, 10178.7, 10373.7, 10816.5])
    np.testing.assert_allclose(rep["total_cost"], [5.0, 21.3, 26.3, 33.5])
    np.testing.assert_allclose(rep["cost"], [5 / 10000, 16.3 / 9995, 5 / 10178.7, 7.2 / 10373.7])
    np.testing.assert_allclose(rep["total_turnover"], [4000.0, 16800.0, 17850.0, 22650.0])
    np.testing.assert_allclose(rep["turnover"], [0.4, 12800 / 9995, 1050 / 10178.7, 4800 / 10373.7])
    # Gross return: d2 A +0.5·400; d3 B +1·200 (C suspended: no change); d4 A +0.5·100, C +0.5·800.
    np.testing.assert_allclose(
        rep["return"], [0.0, 200 / 9995, 200 / 10178.7, 450 / 10373.7], atol=1e-15
    )
    # Benchmark close-to-close return, in float32 as Qlib's expression: 101/100 − 1, 100/101 − 1 …
    c = np.array([row[3] for row in CLOSE], dtype=np.float32)
    np.testing.assert_array_equal(rep["bench"], (c[1:] / c[:-1] - np.float32(1)).astype(float))


def test_positions_and_trades(result) -> None:
    pos = result.positions
    day = {d: pos.loc[d] for d in DAYS[1:]}
    assert day[DAYS[1]]["amount"].to_dict() == {"A": 400.0}
    assert day[DAYS[2]]["amount"].to_dict() == pytest.approx({"B": 200.0, "C": 800.0})
    assert day[DAYS[3]]["amount"].to_dict() == pytest.approx({"A": 100.0, "B": 200.0, "C": 800.0})
    assert day[DAYS[3]].loc["C", "price"] == 5.5  # suspended: last close kept
    assert list(day[DAYS[3]]["hold_days"]) == [1, 2, 2]
    assert day[DAYS[4]]["amount"].to_dict() == pytest.approx({"A": 100.0, "B": 200.0})
    assert day[DAYS[4]]["weight"].sum() == pytest.approx(5500 / 10816.5)

    tr = result.trades.reset_index()
    cols = ["datetime", "instrument", "direction", "amount", "value", "cost"]
    got = [(d.day, s, int(k), a, v, c) for d, s, k, a, v, c in tr[cols].itertuples(index=False)]
    want = [
        (3, "A", 1, 400.0, 4000.0, 5.0),
        (6, "A", -1, 400.0, 4200.0, 6.3),
        (6, "B", 1, 200.0, 4200.0, 5.0),
        (6, "C", 1, 800.0, 4400.0, 5.0),
        (7, "A", 1, 100.0, 1050.0, 5.0),
        (8, "C", -1, 800.0, 4800.0, 7.2),
    ]
    assert [g[:3] for g in got] == [w[:3] for w in want]
    np.testing.assert_allclose([g[3:] for g in got], [w[3:] for w in want])


def test_risk_uses_excess_return(result) -> None:
    risk = result.risk()
    excess = result.report["return"] - result.report["bench"] - result.report["cost"]
    assert risk.loc["mean", "excess_return_with_cost"] == pytest.approx(excess.mean())
    assert list(risk.columns) == ["excess_return_without_cost", "excess_return_with_cost"]


def test_hold_thresh_blocks_early_sale() -> None:
    res = run(strategy=TopkDropout(topk=2, n_drop=1, hold_thresh=2))
    # A was bought on d1 and has been held one day on d2: it stays.
    assert "A" in res.positions.loc[DAYS[2]].index


def test_limit_up_held_stock_sells_only_when_allowed() -> None:
    change = [row[:] for row in CHANGE]
    change[2][0] = 0.1  # A limit-up on d2, the day the strategy sells it
    panel = make_panel(change=change)
    kept = run(panel=panel)
    assert "A" in kept.positions.loc[DAYS[2]].index
    sold = run(panel=panel, strategy=TopkDropout(topk=2, n_drop=1, forbid_all_trade_at_limit=False))
    assert "A" not in sold.positions.loc[DAYS[2]].index


def test_limit_down_blocks_sale() -> None:
    change = [row[:] for row in CHANGE]
    change[2][0] = -0.1
    strategy = TopkDropout(topk=2, n_drop=1, forbid_all_trade_at_limit=False)
    res = run(panel=make_panel(change=change), strategy=strategy)
    assert "A" in res.positions.loc[DAYS[2]].index


def test_missing_and_all_nan_days_hold(caplog) -> None:
    pred = PRED.drop(pd.Timestamp("2020-01-03"), level="datetime").copy()
    pred.loc[pd.Timestamp("2020-01-06")] = NAN
    with caplog.at_level(logging.WARNING, logger="alstm.evaluate.backtest"):
        res = run(pred=pred)
    assert "all scores of 2020-01-06 are NaN" in caplog.text
    # d1 buys A; d2 (no scores) and d3 (all NaN) hold it.
    for d in DAYS[1:4]:
        assert res.positions.loc[d]["amount"].to_dict() == {"A": 400.0}
    assert (res.report["turnover"].iloc[1:3] == 0).all()


def test_cash_shortfall_clips_buy() -> None:
    # One buy with all the cash and no lot rounding: value + cost would exceed the cash, so Qlib
    # buys (cash − min_cost) / price (cost = min_cost below the 10005 critical cash).
    pred = make_pred({"2020-01-02": {"A": 1.0}})
    res = run(
        pred=pred,
        panel=make_panel(),
        strategy=TopkDropout(topk=1, n_drop=0, risk_degree=1.0),
        rules=ExchangeRules(trade_unit=None),
    )
    first = res.report.iloc[0]
    assert first["value"] == pytest.approx(9995.0)
    assert first["cash"] == pytest.approx(0.0, abs=1e-9)


def test_deal_price_falls_back_to_close() -> None:
    panel = make_panel()
    fields = dict(
        panel.fields, open=np.where(np.isnan(panel["close"]), NAN, 0.0).astype(np.float32)
    )
    panel = Panel(panel.calendar, panel.instruments, fields, panel.first, panel.last)
    ex = Exchange(panel, ExchangeRules(deal_price="open"))
    np.testing.assert_array_equal(ex.buy_price[1], ex.close[1])


def test_exchange_rules() -> None:
    ex = Exchange(make_panel())
    assert list(ex.tradable(1, np.arange(4))) == [True, True, False, True]  # C limit-up
    assert list(ex.tradable(1, np.arange(4), "sell")) == [True, True, True, True]
    assert list(ex.tradable(3, np.arange(4), "sell")) == [True, True, False, True]  # suspended
    # 237.5 adjusted shares at factor 2 = 475 raw → 400 raw → 200 adjusted; 99.95 → 100 (+0.1).
    rounded = ex.round_amount(np.array([237.5, 99.95]), np.array([2.0, 1.0]))
    np.testing.assert_allclose(rounded, [200.0, 100.0])
    np.testing.assert_allclose(ex.cost(np.array([1000.0, 20000.0, 0.0]), "buy"), [5.0, 10.0, 0.0])
    np.testing.assert_allclose(ex.cost(np.array([20000.0]), "sell"), [30.0])


def test_rejects_bad_input() -> None:
    dup = pd.concat([PRED, PRED.iloc[:1]])
    with pytest.raises(ValueError, match="duplicate"):
        run(pred=dup)
    weekend = make_pred({"2020-01-04": {"A": 1.0}})
    with pytest.raises(DataError, match="not trading days"):
        run(pred=pd.concat([PRED, weekend]))
    unknown = make_pred({"2020-01-02": {"A": 1.0, "ZZ1": 2.0, "ZZ2": 3.0}})
    with pytest.raises(DataError, match=r"\['ZZ1', 'ZZ2'\]"):
        run(pred=unknown)
    with pytest.raises(DataError, match="benchmark"):
        run(benchmark="SH000905")
    with pytest.raises(ValueError, match="topk=4"):
        run(strategy=TopkDropout(topk=4, n_drop=1))
    with pytest.raises(DataError, match="day before"):
        backtest(PRED, make_panel(), "2020-01-01", "2020-01-08", strategy=STRATEGY)
    with pytest.raises(DataError, match="no trading day"):
        backtest(PRED, make_panel(), "2021-01-01", "2021-02-01", strategy=STRATEGY)
    with pytest.raises(ValueError, match=r"\(datetime, instrument\)"):
        backtest(PRED.droplevel(0), make_panel(), "2020-01-03", "2020-01-08", strategy=STRATEGY)
