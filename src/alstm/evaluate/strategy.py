"""TopkDropout: which held stocks to sell and which new ones to buy on one day (SPEC §10).

The selection is pure array code over instrument columns. Columns are in alphabetical order, so
"ties keep column order" is the order Qlib's pandas sorts give (NaN scores always last).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class TopkDropout:
    """Hold ``topk`` stocks; each day swap at most ``n_drop`` of them for better-scored ones.

    - ``method_sell``: ``"bottom"`` sells held stocks among the ``n_drop`` worst of held ∪
      candidates; ``"random"`` sells ``n_drop`` random held stocks.
    - ``method_buy``: ``"top"`` buys the best-scored stocks not held; ``"random"`` draws among the
      not-held stocks of the overall top ``topk``. Random draws use
      ``numpy.random.default_rng(seed)``, not Qlib's global RNG: they do not reproduce its draws.
    - ``hold_thresh``: a stock is sold only after being held this many days.
    - ``only_tradable``: pick candidates among today's tradable stocks only.
    - ``forbid_all_trade_at_limit``: a stock at either price limit can be neither bought nor sold.
    - ``risk_degree``: fraction of cash spent on the day's buys (split equally).
    """

    topk: int = 50
    n_drop: int = 5
    method_sell: Literal["bottom", "random"] = "bottom"
    method_buy: Literal["top", "random"] = "top"
    hold_thresh: int = 1
    only_tradable: bool = False
    forbid_all_trade_at_limit: bool = True
    risk_degree: float = 0.95
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.topk < 1 or self.n_drop < 0:
            raise ValueError(f"need topk ≥ 1 and n_drop ≥ 0, got {self.topk}, {self.n_drop}")
        if self.method_sell not in ("bottom", "random"):
            raise ValueError(f"method_sell must be 'bottom' or 'random', got {self.method_sell!r}")
        if self.method_buy not in ("top", "random"):
            raise ValueError(f"method_buy must be 'top' or 'random', got {self.method_buy!r}")

    def select(
        self,
        score: np.ndarray,
        scored: np.ndarray,
        held: np.ndarray,
        tradable: np.ndarray,
        rng: np.random.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(sell, buy)`` column indices for one day.

        ``score`` float ``[N]`` (NaN = no or NaN score), ``scored`` bool ``[N]`` (the instrument
        has a prediction row), ``held`` bool ``[N]``, ``tradable`` bool ``[N]`` (used only with
        ``only_tradable``). ``sell`` are the held stocks the strategy wants to sell (untradable
        ones included; the caller skips them), ``buy`` the ordered list to buy.
        """
        rng = rng if rng is not None else np.random.default_rng(self.seed)
        last = _by_score(np.flatnonzero(held), score)
        n_new = self.n_drop + self.topk - len(last)
        if self.method_buy == "top":
            candidates = _by_score(np.flatnonzero(scored & ~held), score)
            today = self._first_n(candidates, n_new, tradable)
        else:
            top = self._first_n(_by_score(np.flatnonzero(scored), score), self.topk, tradable)
            today = _draw(rng, top[~held[top]], n_new)
        if self.method_sell == "bottom":
            comb = _by_score(np.union1d(last, today), score)
            worst = self._last_n(comb, self.n_drop, tradable)
            sell = last[np.isin(last, worst)]
        else:
            pool = last[tradable[last]] if self.only_tradable else last
            sell = _draw(rng, pool, self.n_drop) if len(last) else last
        buy = today[: len(sell) + self.topk - len(last)]
        return sell, buy

    def _first_n(self, idx: np.ndarray, n: int, tradable: np.ndarray) -> np.ndarray:
        """Qlib's ``get_first_n``: ``idx[:n]`` (Python slice, so a negative ``n`` drops from the
        end), or with ``only_tradable`` the first ``max(n, 1)`` tradable ones."""
        if not self.only_tradable:
            return idx[:n]
        return idx[tradable[idx]][: max(n, 1)]

    def _last_n(self, idx: np.ndarray, n: int, tradable: np.ndarray) -> np.ndarray:
        """Qlib's ``get_last_n``: ``idx[-n:]`` (``n = 0`` keeps all), or with ``only_tradable``
        the last ``max(n, 1)`` tradable ones."""
        if not self.only_tradable:
            return idx[-n:]
        ok = idx[tradable[idx]]
        return ok[len(ok) - min(max(n, 1), len(ok)) :]


def _by_score(idx: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``idx`` sorted by score descending, NaN last, ties in column order."""
    s = score[idx]
    key = np.where(np.isnan(s), np.inf, -s)
    return idx[np.lexsort((idx, key))]


def _draw(rng: np.random.Generator, pool: np.ndarray, n: int) -> np.ndarray:
    """``n`` distinct random members of ``pool``; all of it when ``n`` is out of range (as Qlib
    falls back on ``ValueError``)."""
    if n < 0 or n > len(pool):
        return pool
    return rng.choice(pool, n, replace=False)
