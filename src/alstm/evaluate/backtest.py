"""Daily backtest of a prediction with TopkDropout, as Qlib's ``backtest`` with a
``SimulatorExecutor(time_per_step="day")`` (SPEC §10).

On trading day ``t`` the strategy reads the scores dated the previous trading day, sells first,
then spends ``risk_degree`` of the cash on the day's buys; at the close every held stock is valued
at its close (a suspended stock keeps its last price). State lives in ``[N]`` arrays over the
prediction's instruments; a day's orders are handled as arrays, never as per-order objects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alstm.data.errors import DataError
from alstm.data.panel import Panel
from alstm.data.provider import QlibDataDir
from alstm.evaluate.exchange import MIN_TRADE_VALUE, Exchange, ExchangeRules
from alstm.evaluate.risk import risk_analysis
from alstm.evaluate.strategy import TopkDropout

log = logging.getLogger(__name__)

DateLike = str | pd.Timestamp

REPORT_COLUMNS = (
    "account",
    "return",
    "total_turnover",
    "turnover",
    "total_cost",
    "cost",
    "value",
    "cash",
    "bench",
)


@dataclass(frozen=True)
class BacktestResult:
    """Output of :func:`backtest`.

    - ``report``: one row per trading day (index ``datetime``) with Qlib's ``report_normal``
      columns: ``account`` (cash + stock value, currency), ``return`` (gross of cost, fraction of
      the previous account), ``total_turnover``/``turnover`` (traded value, cumulative / fraction),
      ``total_cost``/``cost`` (likewise), ``value`` (stock value), ``cash``, ``bench`` (benchmark
      close-to-close return).
    - ``positions``: end-of-day holdings indexed ``(datetime, instrument)``: ``amount`` (adjusted
      shares), ``price`` (valuation price), ``weight`` (of the account), ``hold_days``.
    - ``trades``: deals indexed ``(datetime, instrument)``: ``direction`` (+1 buy, −1 sell),
      ``amount`` (adjusted shares), ``price``, ``value``, ``cost`` (currency).
    """

    report: pd.DataFrame
    positions: pd.DataFrame
    trades: pd.DataFrame

    def excess_returns(self, with_cost: bool = True) -> pd.Series:
        """Daily ``return − bench`` (minus ``cost`` when ``with_cost``)."""
        r = self.report["return"] - self.report["bench"]
        return r - self.report["cost"] if with_cost else r

    def risk(self, freq: str = "day") -> pd.DataFrame:
        """:func:`risk_analysis` of the excess return without and with cost (columns), as
        Qlib's ``PortAnaRecord``."""
        return pd.DataFrame(
            {
                "excess_return_without_cost": risk_analysis(self.excess_returns(False), freq),
                "excess_return_with_cost": risk_analysis(self.excess_returns(True), freq),
            }
        )


def backtest(
    pred: pd.Series,
    data: Panel | QlibDataDir | str | Path,
    start: DateLike,
    end: DateLike,
    *,
    strategy: TopkDropout | None = None,
    rules: ExchangeRules | None = None,
    benchmark: str | None = "SH000300",
    account: float = 1e8,
) -> BacktestResult:
    """Backtest ``pred`` (``score`` per ``(datetime, instrument)``) on the trading days in
    ``[start, end]`` with ``strategy`` (default ``TopkDropout(50, 5)``) and ``rules`` (default: the
    benchmark's costs and limits), starting from ``account`` in cash; ``benchmark=None`` → bench 0.

    ``data`` is a Qlib data directory or a :class:`Panel` holding the prediction's instruments,
    the benchmark and the fields ``close``, ``change``, ``factor`` (+ deal price); a panel must
    include the trading day before the first backtest day. Raises ``ValueError`` on duplicate
    prediction rows and ``DataError`` on prediction dates that are not trading days, instruments
    or benchmark missing from the data. A day whose previous-day scores are missing or all NaN is
    held (no trades; all-NaN days are logged).
    """
    strategy = strategy or TopkDropout()
    score = _check_pred(pred)
    universe = tuple(sorted(score.index.get_level_values("instrument").unique()))
    if strategy.topk > len(universe):
        raise ValueError(
            f"topk={strategy.topk} exceeds the {len(universe)} instruments of the prediction"
        )
    exchange_rules = rules or ExchangeRules()
    panel, first = _market_panel(data, score, universe, benchmark, exchange_rules, start, end)
    column = {s: j for j, s in enumerate(panel.instruments)}
    cols = [column[s] for s in universe]
    stocks = _select_columns(panel, cols, exchange_rules.fields)
    exchange = Exchange(stocks, exchange_rules)
    scores, scored = _score_matrix(score, panel.calendar, universe)
    bench = (
        _benchmark_returns(panel["close"][:, column[benchmark]])
        if benchmark is not None
        else np.zeros(len(panel.calendar))
    )
    return _simulate(exchange, strategy, scores, scored, bench, panel.calendar, first, account)


# --- input checks and data ----------------------------------------------------------------------


def _check_pred(pred: pd.Series | pd.DataFrame) -> pd.Series:
    """The score as float64 indexed ``(datetime, instrument)``; duplicates are an error."""
    if isinstance(pred, pd.DataFrame):
        if pred.shape[1] != 1:
            raise ValueError(
                f"pred must be a Series or a one-column frame, got {list(pred.columns)}"
            )
        pred = pred.iloc[:, 0]
    idx = pred.index
    if not isinstance(idx, pd.MultiIndex) or set(idx.names) != {"datetime", "instrument"}:
        raise ValueError(f"pred must be indexed (datetime, instrument), got {list(idx.names)}")
    s = pred.reorder_levels(["datetime", "instrument"]).astype("float64")
    dup = s.index.duplicated()
    if dup.any():
        shown = [f"{d.date()} {i}" for d, i in s.index[dup][:5]]
        raise ValueError(
            f"pred has {int(dup.sum())} duplicate (datetime, instrument) rows: {shown}"
        )
    return s


def _market_panel(
    data: Panel | QlibDataDir | str | Path,
    score: pd.Series,
    universe: tuple[str, ...],
    benchmark: str | None,
    rules: ExchangeRules,
    start: DateLike,
    end: DateLike,
) -> tuple[Panel, int]:
    """The panel from the day before the first trading day to ``end``, and that first row."""
    names = sorted({*universe, benchmark} if benchmark is not None else set(universe))
    if isinstance(data, Panel):
        available, calendar = set(data.instruments), data.calendar
    else:
        data = data if isinstance(data, QlibDataDir) else QlibDataDir(data)
        available, calendar = set(data.instruments()), data.calendar
    missing = sorted(set(universe) - available)
    if missing:
        raise DataError(f"{len(missing)} predicted instruments are not in the data: {missing[:20]}")
    if benchmark is not None and benchmark not in available:
        raise DataError(f"benchmark {benchmark!r} is not in the data")
    dates = score.index.get_level_values("datetime").unique()
    outside = dates[~dates.isin(calendar)]
    if len(outside):
        raise DataError(
            f"{len(outside)} prediction dates are not trading days of the data "
            f"({calendar[0].date()} .. {calendar[-1].date()}): "
            f"{[str(d.date()) for d in outside[:5]]}"
        )
    lo = int(calendar.searchsorted(pd.Timestamp(start), side="left"))
    hi = int(calendar.searchsorted(pd.Timestamp(end), side="right"))
    if lo >= hi:
        raise DataError(f"no trading day in [{start}, {end}]")
    if lo == 0:
        raise DataError(
            "the data must include the trading day before the first backtest day "
            f"(it starts on {calendar[0].date()})"
        )
    if pd.Timestamp(end) > calendar[-1]:
        log.warning("end %s is after the last trading day of the data %s", end, calendar[-1].date())
    if isinstance(data, Panel):
        rows = slice(lo - 1, hi)
        cut = Panel(
            data.calendar[rows],
            data.instruments,
            {f: data[f][rows] for f in rules.fields},
            data.first - (lo - 1),
            data.last - (lo - 1),
        )
        return cut, 1
    panel = data.load(rules.fields, calendar[lo - 1], calendar[hi - 1], instruments=names)
    return panel, 1


def _select_columns(panel: Panel, cols: list[int], fields: list[str]) -> Panel:
    """The panel restricted to columns ``cols`` and ``fields``."""
    return Panel(
        panel.calendar,
        tuple(panel.instruments[c] for c in cols),
        {f: panel[f][:, cols] for f in fields},
        panel.first[cols],
        panel.last[cols],
    )


def _score_matrix(
    score: pd.Series, calendar: pd.DatetimeIndex, universe: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """float64 ``[T, N]`` scores (NaN where none) and bool ``[T, N]``: a prediction row exists."""
    dates = score.index.get_level_values("datetime")
    inside = dates.isin(calendar)
    t = calendar.get_indexer(dates[inside])
    n = pd.Index(universe).get_indexer(score.index.get_level_values("instrument")[inside])
    values = np.full((len(calendar), len(universe)), np.nan)
    present = np.zeros(values.shape, dtype=bool)
    values[t, n] = score.to_numpy()[inside]
    present[t, n] = True
    return values, present


def _benchmark_returns(close: np.ndarray) -> np.ndarray:
    """float64 ``[T]`` close-to-close return, NaN → 0, row 0 = 0; computed in float32 as Qlib's
    ``$close/Ref($close,1)-1`` expression is."""
    close = close.astype(np.float32)
    r = np.zeros(len(close), dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        r[1:] = close[1:] / close[:-1] - np.float32(1)
    return np.nan_to_num(r, nan=0.0).astype(np.float64)


# --- simulation ---------------------------------------------------------------------------------


class _Book:
    """Account state over ``N`` instruments: holdings, valuation prices, cash and running sums."""

    def __init__(self, n: int, cash: float) -> None:
        self.held = np.zeros(n, dtype=bool)
        self.amount = np.zeros(n)
        self.price = np.zeros(n)
        self.days = np.zeros(n, dtype=np.int64)
        self.cash = float(cash)
        self.total_turnover = 0.0
        self.total_cost = 0.0

    def add_totals(self, values: np.ndarray, costs: np.ndarray) -> None:
        """Accumulate deal values and costs one by one, in deal order (as Qlib's float sums)."""
        self.total_turnover = _running(self.total_turnover, values)[-1]
        self.total_cost = _running(self.total_cost, costs)[-1]


def _running(start: float, steps: np.ndarray) -> np.ndarray:
    """``[start, start+s0, (start+s0)+s1, …]`` with left-to-right float additions."""
    return np.cumsum(np.concatenate([[start], steps]))


def _simulate(
    ex: Exchange,
    strategy: TopkDropout,
    scores: np.ndarray,
    scored: np.ndarray,
    bench: np.ndarray,
    calendar: pd.DatetimeIndex,
    first: int,
    account: float,
) -> BacktestResult:
    """Run the day loop over panel rows ``first ..`` and assemble the result frames."""
    n = scores.shape[1]
    book = _Book(n, account)
    rng = np.random.default_rng(strategy.seed)
    everyone = np.arange(n)
    rows, pos_rows, trade_rows = [], [], []
    last_value, last_turnover, last_cost = float(account), 0.0, 0.0
    for t in range(first, len(calendar)):
        s, present = scores[t - 1], scored[t - 1]
        if present.any() and np.isnan(s[present]).all():
            log.warning("all scores of %s are NaN: holding", calendar[t - 1].date())
        elif present.any():
            sell, buy = strategy.select(s, present, book.held, ex.tradable(t, everyone), rng)
            trade_rows.append(_sell(ex, strategy, book, t, sell))
            trade_rows.append(_buy(ex, strategy, book, t, buy))
        _mark_to_close(ex, book, t)
        value = float(np.sum(book.amount[book.held] * book.price[book.held]))
        acct = value + book.cash
        cost = book.total_cost - last_cost
        turnover = book.total_turnover - last_turnover
        rows.append(
            (
                acct,
                (acct - last_value + cost) / last_value,
                book.total_turnover,
                turnover / last_value,
                book.total_cost,
                cost / last_value,
                value,
                book.cash,
                bench[t],
            )
        )
        last_value, last_turnover, last_cost = acct, book.total_turnover, book.total_cost
        h = np.flatnonzero(book.held)
        weight = book.amount[h] * book.price[h] / acct
        pos_rows.append((t, h, book.amount[h], book.price[h], weight, book.days[h]))
    days = calendar[first:]
    report = pd.DataFrame(rows, index=pd.Index(days, name="datetime"), columns=list(REPORT_COLUMNS))
    return BacktestResult(
        report, _positions_frame(pos_rows, calendar, ex), _trades_frame(trade_rows, calendar, ex)
    )


def _sell(ex: Exchange, strategy: TopkDropout, book: _Book, t: int, sell: np.ndarray) -> tuple:
    """Sell all of each wanted held stock that may trade today; cash += value − cost."""
    limit_dir = None if strategy.forbid_all_trade_at_limit else "sell"
    ok = ex.tradable(t, sell, limit_dir) & (book.days[sell] >= strategy.hold_thresh)
    ok &= ex.tradable(t, sell, "sell")
    idx = sell[ok]
    price = ex.sell_price[t, idx]
    value = book.amount[idx] * price
    cost = ex.cost(value, "sell")
    before = _running(book.cash, value - cost)[:-1]
    # Qlib refuses a sale whose proceeds cannot cover its cost; this only bites a nearly empty
    # account, and then the running cash of later sales changes, so replay those one by one.
    broke = before + value < np.maximum(value * ex.rules.close_cost, ex.rules.min_cost)
    if broke.any():
        value, cost = _replay_sells(ex, book.cash, value, cost)
    done = value > MIN_TRADE_VALUE
    idx, price, value, cost = idx[done], price[done], value[done], cost[done]
    book.cash = float(_running(book.cash, value - cost)[-1])
    book.add_totals(value, cost)
    # Qlib deletes a stock whose sold amount (value / price) is close to the held amount: all here.
    book.held[idx] = False
    book.amount[idx] = 0.0
    book.days[idx] = 0
    return t, idx, -1, value / price, price, value, cost


def _replay_sells(
    ex: Exchange, cash: float, value: np.ndarray, cost: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sequential version of the sale cash check: refused sales trade nothing."""
    value, cost = value.copy(), cost.copy()
    for k in range(len(value)):
        if cash + value[k] < max(value[k] * ex.rules.close_cost, ex.rules.min_cost):
            value[k] = cost[k] = 0.0
        cash += value[k] - cost[k]
    return value, cost


def _buy(ex: Exchange, strategy: TopkDropout, book: _Book, t: int, buy: np.ndarray) -> tuple:
    """Buy ``cash · risk_degree / len(buy)`` of each tradable stock of ``buy``, in whole lots."""
    target = book.cash * strategy.risk_degree / len(buy) if len(buy) else 0.0
    limit_dir = None if strategy.forbid_all_trade_at_limit else "buy"
    idx = buy[ex.tradable(t, buy, limit_dir) & ex.tradable(t, buy, "buy")]
    price = ex.buy_price[t, idx]
    factor = ex.factor[t, idx]
    amount = ex.round_amount(target / price, factor)
    value = amount * price
    cost = ex.cost(value, "buy")
    before = _running(book.cash, -(value + cost))[:-1]
    need = value + np.maximum(value * ex.rules.open_cost, ex.rules.min_cost)
    short = before < need
    if short.any():
        amount, value, cost = _replay_buys(ex, book.cash, amount, price, factor)
    done = value > MIN_TRADE_VALUE
    idx, price, value, cost = idx[done], price[done], value[done], cost[done]
    book.cash = float(_running(book.cash, -(value + cost))[-1])
    book.add_totals(value, cost)
    book.held[idx] = True
    book.amount[idx] = value / price  # Qlib stores trade value / price
    book.price[idx] = price
    book.days[idx] = 0
    return t, idx, 1, value / price, price, value, cost


def _replay_buys(
    ex: Exchange, cash: float, amount: np.ndarray, price: np.ndarray, factor: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Qlib's sequential cash check for buys: skip a buy whose cost exceeds the cash, shrink one
    the cash cannot pay for to the largest affordable whole-lot amount."""
    rate, min_cost = ex.rules.open_cost, ex.rules.min_cost
    amount = amount.copy()
    for k in range(len(amount)):
        value = amount[k] * price[k]
        if cash < max(value * rate, min_cost):
            amount[k] = 0.0
        elif cash < value + max(value * rate, min_cost):
            affordable = min(ex.max_buy_amount(cash, price[k]), amount[k])
            amount[k] = ex.round_amount(np.array([affordable]), factor[k : k + 1])[0]
        value = amount[k] * price[k]
        cash -= value + (max(value * rate, min_cost) if value > MIN_TRADE_VALUE else 0.0)
    value = amount * price
    return amount, value, ex.cost(value, "buy")


def _mark_to_close(ex: Exchange, book: _Book, t: int) -> None:
    """End of day: value held stocks at today's close unless suspended; count the day held."""
    h = np.flatnonzero(book.held)
    live = h[~ex.suspended[t, h]]
    book.price[live] = ex.close[t, live]
    book.days[h] += 1


def _positions_frame(rows: list, calendar: pd.DatetimeIndex, ex: Exchange) -> pd.DataFrame:
    """Long frame of end-of-day holdings from the per-day arrays."""
    return _long_frame(
        rows, calendar, ex, ["amount", "price", "weight", "hold_days"], dtypes=[float] * 3 + [int]
    )


def _trades_frame(rows: list, calendar: pd.DatetimeIndex, ex: Exchange) -> pd.DataFrame:
    """Long frame of deals from the per-day arrays."""
    expanded = [(t, idx, np.full(len(idx), d), *rest) for t, idx, d, *rest in rows]
    return _long_frame(
        expanded,
        calendar,
        ex,
        ["direction", "amount", "price", "value", "cost"],
        dtypes=[int] + [float] * 4,
    )


def _long_frame(
    rows: list, calendar: pd.DatetimeIndex, ex: Exchange, columns: list[str], dtypes: list[type]
) -> pd.DataFrame:
    """Concatenate ``(t, idx, column arrays…)`` into a frame indexed ``(datetime, instrument)``."""
    names = np.asarray(ex.instruments, dtype=object)
    t = np.concatenate([np.full(len(r[1]), r[0]) for r in rows]) if rows else np.zeros(0, int)
    idx = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0, int)
    data = {
        c: (np.concatenate([r[2 + k] for r in rows]) if rows else np.zeros(0)).astype(dt)
        for k, (c, dt) in enumerate(zip(columns, dtypes, strict=True))
    }
    index = pd.MultiIndex.from_arrays([calendar[t], names[idx]], names=["datetime", "instrument"])
    return pd.DataFrame(data, index=index)
