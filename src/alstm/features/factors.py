"""Compute named factor expressions for a market straight from a Qlib data directory."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from alstm.data.errors import DataError
from alstm.data.provider import QlibDataDir
from alstm.data.qlib_format import spans_to_mask
from alstm.features.alpha158 import alpha158
from alstm.features.alpha360 import alpha360
from alstm.features.cache import cache_key, cached
from alstm.features.engine import Expr, ResultBuffer, compile_expression, evaluate, gc_paused
from alstm.features.parser import ExpressionError

#: The label of both benchmarks: the return from the close of t+1 to the close of t+2.
LABEL = {"LABEL0": "Ref($close, -2)/Ref($close, -1) - 1"}

FACTOR_SETS: dict[str, Callable[..., dict[str, str]]] = {"alpha158": alpha158, "alpha360": alpha360}


def factor_set(name: str, **knobs: object) -> dict[str, str]:
    """Column name → expression of a registered factor set (``alpha158``, ``alpha360``)."""
    try:
        return FACTOR_SETS[name.lower()](**knobs)
    except KeyError:
        raise ValueError(f"unknown factor set {name!r}; known: {sorted(FACTOR_SETS)}") from None


@gc_paused
def compute_factors(
    data: QlibDataDir,
    exprs: Mapping[str, str],
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    market: str | None = None,
) -> pd.DataFrame:
    """Float32 frame indexed ``(datetime, instrument)``, one column per expression, as Qlib's
    ``D.features(D.instruments(market), …)`` returns it (sorted by datetime, then instrument).

    Each expression sees the instrument's whole stored history that its windows need, whatever
    the market membership; membership only selects the rows afterwards.
    """
    compiled: dict[str, Expr] = {}
    for name, text in exprs.items():
        try:
            compiled[name] = compile_expression(text)
        except ExpressionError as err:
            raise ExpressionError(f"factor {name!r}: {err}") from None
    fields = sorted(set().union(*(c.fields for c in compiled.values())))
    stored = set(data.fields())
    missing = [f for f in fields if f not in stored]
    if missing:
        raise DataError(
            f"{data.root}: field(s) {missing} used by the expressions are not stored; "
            f"stored fields: {sorted(stored)}"
        )
    cal = data.calendar
    s = int(cal.searchsorted(pd.Timestamp(start), side="left"))
    e = int(cal.searchsorted(pd.Timestamp(end), side="right")) - 1
    if s > e:
        raise DataError(
            f"{data.root}: no trading day in [{start}, {end}]; calendar spans "
            f"{cal[0].date()} .. {cal[-1].date()}"
        )
    left = max(c.left for c in compiled.values())
    right = max(c.right for c in compiled.values())
    lo, hi = max(s - left, 0), min(e + right, len(cal) - 1)
    instruments, buffer = None, None
    if market is not None:
        window = (cal[s], cal[e])
        spans = data.spans(market)
        instruments = sorted(
            sym
            for sym, rows in spans.items()
            if any(a <= window[1] and b >= window[0] for a, b in rows)
        )
        # The result's rows are the membership days on which members have data: at most all
        # membership days. The buffer is touched while the data loads.
        members = spans_to_mask(spans, cal[s : e + 1], tuple(instruments))
        buffer = ResultBuffer(int(members.sum()), len(compiled))
    panel = data.load(
        fields, cal[lo], cal[hi], markets=[market] if market else [], instruments=instruments
    )
    return evaluate(panel, compiled, cal[s], cal[e], market, buffer=buffer)


def load_factors(
    data: QlibDataDir,
    exprs: Mapping[str, str],
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    market: str | None = None,
    *,
    cache_dir: Path | None = None,
) -> pd.DataFrame:
    """:func:`compute_factors` through the on-disk cache (``cache_dir=None`` computes afresh)."""
    params = {"market": market, "start": str(pd.Timestamp(start)), "end": str(pd.Timestamp(end))}
    key = cache_key(data.fingerprint(), exprs, **params) if cache_dir is not None else ""
    manifest = {"data_dir": str(data.root), "exprs": dict(exprs), **params}
    return cached(
        cache_dir, key, lambda: compute_factors(data, exprs, start, end, market), manifest
    )
