"""Exchange rules over a Panel: tradability, deal prices, trade-unit rounding and costs.

Reproduces Qlib's daily ``Exchange`` (SPEC §10). All per-day queries take and return NumPy
arrays indexed by instrument column, so a whole day's orders are checked at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from alstm.data.errors import DataError
from alstm.data.panel import Panel

log = logging.getLogger(__name__)

Direction = Literal["buy", "sell"] | None

# Qlib's tolerance for a deal: a trade worth ≤ 1e-5 is not a trade (no cost, no position change).
MIN_TRADE_VALUE = 1e-5


@dataclass(frozen=True)
class ExchangeRules:
    """Market rules of the backtest; defaults are the ALSTM benchmark's (SPEC §8).

    - ``deal_price``: field traded at (``"close"``, ``"open"``, ``"vwap"``) or ``(buy, sell)``.
    - ``limit_threshold``: a stock with ``$change ≥ t`` is limit-up (cannot be bought), ``≤ −t``
      limit-down (cannot be sold); ``None`` disables limits.
    - ``open_cost`` / ``close_cost``: cost rate of a buy / sell; ``min_cost``: least cost of a deal
      (currency units).
    - ``trade_unit``: lot size in raw shares (100 in China); ``None`` trades fractional amounts.
    """

    deal_price: str | tuple[str, str] = "close"
    limit_threshold: float | None = 0.095
    open_cost: float = 0.0005
    close_cost: float = 0.0015
    min_cost: float = 5.0
    trade_unit: float | None = 100

    @property
    def price_fields(self) -> tuple[str, str]:
        """``(buy field, sell field)`` without Qlib's ``$`` prefix."""
        pair = (
            (self.deal_price, self.deal_price)
            if isinstance(self.deal_price, str)
            else self.deal_price
        )
        return pair[0].lstrip("$"), pair[1].lstrip("$")

    @property
    def fields(self) -> list[str]:
        """Panel fields the exchange needs."""
        return sorted({"close", "change", "factor", *self.price_fields})


class Exchange:
    """The rules applied to a panel: float64 ``[T, N]`` prices and boolean ``[T, N]`` limits.

    ``suspended`` = ``$close`` is NaN; ``limit_buy`` = suspended or ``$change ≥ threshold``;
    ``limit_sell`` = suspended or ``$change ≤ −threshold`` (NaN change is no limit).
    """

    def __init__(self, panel: Panel, rules: ExchangeRules | None = None) -> None:
        self.rules = rules or ExchangeRules()
        missing = [f for f in self.rules.fields if f not in panel.fields]
        if missing:
            raise DataError(
                f"the exchange needs fields {missing}; the panel has {sorted(panel.fields)}"
            )
        self.instruments = panel.instruments
        # Qlib's quote holds float64 copies of the stored float32 values.
        self.close = panel["close"].astype(np.float64)
        self.factor = panel["factor"].astype(np.float64)
        self.suspended = np.isnan(self.close)
        buy_field, sell_field = self.rules.price_fields
        self.buy_price = self._deal_price(panel, buy_field)
        self.sell_price = self._deal_price(panel, sell_field)
        change = panel["change"].astype(np.float64)
        t = self.rules.limit_threshold
        with np.errstate(invalid="ignore"):
            up = change >= t if t is not None else np.zeros_like(self.suspended)
            down = change <= -t if t is not None else np.zeros_like(self.suspended)
        self.limit_buy = up | self.suspended
        self.limit_sell = down | self.suspended
        # Qlib trades without lot rounding if any factor is missing on a trading day.
        self.round_lots = self.rules.trade_unit is not None
        if self.round_lots and (np.isnan(self.factor) & ~self.suspended).any():
            log.warning("factor is NaN on some trading days: trade-unit rounding is disabled")
            self.round_lots = False

    def _deal_price(self, panel: Panel, field: str) -> np.ndarray:
        """``[T, N]`` deal price; NaN or ≤ 1e-8 falls back to the close, as Qlib does."""
        price = panel[field].astype(np.float64)
        with np.errstate(invalid="ignore"):
            bad = np.isnan(price) | (price <= 1e-8)
        return np.where(bad, self.close, price)

    def tradable(self, t: int, idx: np.ndarray, direction: Direction = None) -> np.ndarray:
        """Boolean per instrument in ``idx`` on day ``t``: not suspended and not at the limit of
        ``direction`` (``None``: neither limit)."""
        if direction == "buy":
            return ~self.limit_buy[t, idx]
        if direction == "sell":
            return ~self.limit_sell[t, idx]
        return ~(self.limit_buy[t, idx] | self.limit_sell[t, idx])

    def round_amount(self, amount: np.ndarray, factor: np.ndarray) -> np.ndarray:
        """Round adjusted ``amount`` down to whole lots of raw shares:
        ``floor((amount·factor + 0.1) / unit) · unit / factor`` (0.1 absorbs float error)."""
        if not self.round_lots:
            return amount
        unit = self.rules.trade_unit
        return (amount * factor + 0.1) // unit * unit / factor

    def cost(self, value: np.ndarray, direction: Literal["buy", "sell"]) -> np.ndarray:
        """Cost of deals worth ``value``: ``max(value·rate, min_cost)``, 0 where nothing trades."""
        rate = self.rules.open_cost if direction == "buy" else self.rules.close_cost
        fee = np.maximum(value * rate, self.rules.min_cost)
        return np.where(value > MIN_TRADE_VALUE, fee, 0.0)

    def max_buy_amount(self, cash: float, price: float) -> float:
        """Largest amount whose value plus cost fits in ``cash`` (before lot rounding)."""
        rate, min_cost = self.rules.open_cost, self.rules.min_cost
        if cash < min_cost:
            return 0.0
        critical = min_cost / rate + min_cost if rate > 0 else np.inf  # where cost = min_cost
        if cash >= critical:
            return cash / (1 + rate) / price
        return (cash - min_cost) / price
