"""The dense panel every stage above ``data`` works on: float32 ``[time, instrument]`` per field."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Panel:
    """Market data over a calendar slice.

    - ``calendar``: trading days, ``DatetimeIndex`` of length T.
    - ``instruments``: symbols (upper case), length N.
    - ``fields``: field name (``close``, ``volume`` …) → ``float32`` array ``[T, N]``; NaN where
      there is no data (suspended, not listed yet, delisted, outside the stored span).
    - ``first``/``last``: ``int64 [N]``, the row of each instrument's first and last stored day
      relative to this calendar slice (its stored span; -1 / -1 when nothing is stored in it).
      Rows inside the span may still be NaN (suspensions); rows outside it do not exist in Qlib.
    - ``membership``: market name → boolean ``[T, N]``, True on days the instrument is a member.
    """

    calendar: pd.DatetimeIndex
    instruments: tuple[str, ...]
    fields: dict[str, np.ndarray]
    first: np.ndarray
    last: np.ndarray
    membership: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (len(self.calendar), len(self.instruments))
        for name, arr in self.fields.items():
            if arr.shape != shape:
                raise ValueError(f"field {name!r} has shape {arr.shape}, expected {shape}")
        for name, arr in self.membership.items():
            if arr.shape != shape:
                raise ValueError(f"membership {name!r} has shape {arr.shape}, expected {shape}")

    @property
    def shape(self) -> tuple[int, int]:
        """``(T, N)``."""
        return len(self.calendar), len(self.instruments)

    def __getitem__(self, name: str) -> np.ndarray:
        """The ``[T, N]`` array of one field."""
        try:
            return self.fields[name]
        except KeyError:
            raise KeyError(
                f"field {name!r} is not loaded; loaded fields: {sorted(self.fields)}"
            ) from None

    def span_mask(self) -> np.ndarray:
        """Boolean ``[T, N]``: True inside each instrument's stored span."""
        rows = np.arange(len(self.calendar))[:, None]
        return (rows >= self.first[None, :]) & (rows <= self.last[None, :]) & (self.first >= 0)

    def rows(self, market: str | None = None) -> np.ndarray:
        """Boolean ``[T, N]`` of the rows Qlib returns: inside the stored span and, if a market is
        given, on a membership day."""
        mask = self.span_mask()
        if market is not None:
            mask &= self.market_mask(market)
        return mask

    def market_mask(self, market: str) -> np.ndarray:
        """Membership ``[T, N]`` of a loaded market."""
        try:
            return self.membership[market]
        except KeyError:
            raise KeyError(
                f"market {market!r} is not loaded; loaded markets: {sorted(self.membership)}"
            ) from None

    def to_frame(self, market: str | None = None, fields: list[str] | None = None) -> pd.DataFrame:
        """Long frame indexed ``(datetime, instrument)`` with one float32 column per field,
        restricted to :meth:`rows` (sorted by datetime, then instrument)."""
        mask = self.rows(market)
        t_idx, n_idx = np.nonzero(mask)
        index = pd.MultiIndex.from_arrays(
            [self.calendar[t_idx], np.asarray(self.instruments, dtype=object)[n_idx]],
            names=["datetime", "instrument"],
        )
        names = list(self.fields) if fields is None else fields
        return pd.DataFrame({f: self[f][t_idx, n_idx] for f in names}, index=index)
