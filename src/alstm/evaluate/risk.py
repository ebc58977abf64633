"""Risk analysis of a return series, as Qlib's ``qlib.contrib.evaluate.risk_analysis``."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

# Periods per year Qlib annualizes with (SPEC §10): 238 trading days, not 252.
PERIODS_PER_YEAR = {"minute": 240 * 238, "day": 238, "week": 50, "month": 12}

RISK_KEYS = ("mean", "std", "annualized_return", "information_ratio", "max_drawdown")


def annualization(freq: str = "day") -> float:
    """Periods per year for a frequency like ``"day"``, ``"week"``, ``"5min"`` (count divides)."""
    count, unit = _parse_freq(freq)
    return PERIODS_PER_YEAR[unit] / count


def risk_analysis(
    r: pd.Series,
    freq: str = "day",
    *,
    n: float | None = None,
    mode: Literal["sum", "product"] = "sum",
) -> dict[str, float]:
    """Risk metrics of a per-period return series ``r`` (fractions, e.g. 0.01 = 1 %).

    ``mode="sum"`` (Qlib's default) accumulates returns additively: ``annualized_return =
    mean·N``, ``information_ratio = mean/std·√N`` (std with ddof=1) and ``max_drawdown`` is the
    lowest ``cumsum(r) − cummax(cumsum(r))``. ``mode="product"`` compounds them instead. ``N`` is
    ``n`` if given, else :func:`annualization` of ``freq`` (238 for ``"day"``).

    >>> risk_analysis(pd.Series([0.01, -0.02, 0.03]))["max_drawdown"]
    -0.02
    """
    big_n = annualization(freq) if n is None else float(n)
    r = pd.Series(r, dtype="float64")
    if mode == "sum":
        mean = r.mean()
        std = r.std(ddof=1)
        annualized_return = mean * big_n
        cum = r.cumsum()
        max_drawdown = (cum - cum.cummax()).min()
    elif mode == "product":
        curve = (1 + r).cumprod()
        mean = curve.iloc[-1] ** (1 / len(r)) - 1
        std = np.log(1 + r).std(ddof=1)
        annualized_return = curve.iloc[-1] ** (big_n / len(r)) - 1
        max_drawdown = (curve / curve.cummax() - 1).min()
    else:
        raise ValueError(f"mode must be 'sum' or 'product', got {mode!r}")
    information_ratio = mean / std * np.sqrt(big_n)
    values = (mean, std, annualized_return, information_ratio, max_drawdown)
    return {k: float(v) for k, v in zip(RISK_KEYS, values, strict=True)}


def _parse_freq(freq: str) -> tuple[int, str]:
    """``"5min"`` → ``(5, "minute")``; accepts day/d, week/w, month/m, minute/min."""
    text = freq.strip().lower()
    digits = len(text) - len(text.lstrip("0123456789"))
    count = int(text[:digits]) if digits else 1
    unit = text[digits:]
    aliases = {
        "day": "day",
        "d": "day",
        "week": "week",
        "w": "week",
        "month": "month",
        "mon": "month",
        "minute": "minute",
        "min": "minute",
    }
    if unit not in aliases or count <= 0:
        raise ValueError(f"unsupported frequency {freq!r}; use e.g. 'day', 'week', 'month', '5min'")
    return count, aliases[unit]
