"""Alpha360: 60 days of close, open, high, low, vwap and volume, normalised (SPEC.md §4)."""

from __future__ import annotations

PRICE_FIELDS = ("CLOSE", "OPEN", "HIGH", "LOW", "VWAP")


def alpha360(lags: int = 60) -> dict[str, str]:
    """Column name → expression, ``CLOSE59 … CLOSE0, …, VOLUME59 … VOLUME0`` (360 for 60 lags).

    Prices are divided by today's close, volumes by today's volume (+1e-12).

    >>> cols = list(alpha360()); len(cols), cols[0], cols[-1]
    (360, 'CLOSE59', 'VOLUME0')
    """
    out: dict[str, str] = {}
    for field in PRICE_FIELDS:
        f = field.lower()
        for i in range(lags - 1, -1, -1):
            out[f"{field}{i}"] = f"${f}/$close" if i == 0 else f"Ref(${f}, {i})/$close"
    for i in range(lags - 1, -1, -1):
        num = "$volume" if i == 0 else f"Ref($volume, {i})"
        out[f"VOLUME{i}"] = f"{num}/($volume+1e-12)"
    return out
