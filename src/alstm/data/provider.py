"""Read a Qlib data directory into a :class:`~alstm.data.panel.Panel`."""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from alstm.data.errors import DataError
from alstm.data.panel import Panel
from alstm.data.qlib_format import (
    BIN_SUFFIX,
    Span,
    find_child,
    read_bin,
    read_calendar,
    read_instruments,
    spans_to_mask,
)

DateLike = str | pd.Timestamp | None


class QlibDataDir:
    """A Qlib-format data directory (``calendars/``, ``instruments/``, ``features/``).

    >>> data = QlibDataDir("../shared/data/cn_csi300")          # doctest: +SKIP
    >>> panel = data.load(["close", "volume"], "2008-01-01", "2020-08-01", markets=["csi300"])
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: data directory does not exist")
        self._spans: dict[str, dict[str, list[Span]]] = {}

    def __repr__(self) -> str:
        return f"QlibDataDir({str(self.root)!r})"

    @cached_property
    def calendar(self) -> pd.DatetimeIndex:
        """All trading days of ``calendars/day.txt``."""
        cal_dir = find_child(self.root, "calendars")
        return read_calendar(find_child(cal_dir, "day.txt", kind="file"))

    @cached_property
    def _instruments_dir(self) -> Path:
        return find_child(self.root, "instruments")

    @cached_property
    def _features_dir(self) -> Path:
        return find_child(self.root, "features")

    @cached_property
    def _feature_folders(self) -> dict[str, Path]:
        """Upper-case symbol → its features folder."""
        return {p.name.upper(): p for p in self._features_dir.iterdir() if p.is_dir()}

    def markets(self) -> list[str]:
        """Names of the ``instruments/<market>.txt`` files."""
        return sorted(p.stem for p in self._instruments_dir.glob("*.txt"))

    def spans(self, market: str) -> dict[str, list[Span]]:
        """Membership spans per symbol of one market (read once per instance, like the
        calendar)."""
        key = market.lower()
        if key not in self._spans:
            path = next(
                (p for p in self._instruments_dir.glob("*.txt") if p.stem.lower() == key), None
            )
            if path is None:
                raise DataError(
                    f"{self._instruments_dir}: unknown market {market!r}; "
                    f"known markets: {self.markets()}"
                )
            self._spans[key] = read_instruments(path)
        return {sym: list(rows) for sym, rows in self._spans[key].items()}

    def instruments(self, market: str | None = None) -> tuple[str, ...]:
        """Sorted symbols of a market, or every symbol with a features folder."""
        if market is None:
            return tuple(sorted(self._feature_folders))
        return tuple(sorted(self.spans(market)))

    def fields(self, instrument: str | None = None) -> list[str]:
        """Field names stored for one instrument (default: the first one)."""
        folders = self._feature_folders
        if not folders:
            raise DataError(f"{self._features_dir}: no instrument folders")
        folder = folders[instrument.upper()] if instrument else folders[min(folders)]
        return sorted(p.name[: -len(BIN_SUFFIX)] for p in folder.glob(f"*{BIN_SUFFIX}"))

    def fingerprint(self) -> str:
        """Short hash of the calendar, instrument files and every feature file's size and mtime."""
        h = hashlib.sha256()
        for path in sorted(self.root.rglob("*")):
            if path.is_file():
                st = path.stat()
                h.update(f"{path.relative_to(self.root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]

    def _slice(self, start: DateLike, end: DateLike) -> tuple[int, int]:
        cal = self.calendar
        lo = 0 if start is None else int(cal.searchsorted(pd.Timestamp(start), side="left"))
        hi = len(cal) if end is None else int(cal.searchsorted(pd.Timestamp(end), side="right"))
        if lo >= hi:
            raise DataError(
                f"{self.root}: no trading day in [{start}, {end}]; the calendar spans "
                f"{cal[0].date()} .. {cal[-1].date()}"
            )
        return lo, hi

    def load(
        self,
        fields: list[str] | None = None,
        start: DateLike = None,
        end: DateLike = None,
        *,
        markets: list[str] | tuple[str, ...] = (),
        instruments: list[str] | tuple[str, ...] | None = None,
    ) -> Panel:
        """Dense panel of ``fields`` over the calendar days in ``[start, end]``.

        Instruments default to the union of the given markets' members, or every stored instrument
        when no market is given. Each field is ``float32 [T, N]`` with NaN where nothing is stored.
        """
        fields = fields or self.fields()
        lo, hi = self._slice(start, end)
        calendar = self.calendar[lo:hi]
        market_spans = {m: self.spans(m) for m in markets}
        if instruments is None:
            if market_spans:
                instruments = sorted({s for sp in market_spans.values() for s in sp})
            else:
                instruments = list(self.instruments())
        syms = tuple(s.upper() for s in instruments)
        folders = self._feature_folders
        T, N = hi - lo, len(syms)
        arrays = {f: np.full((T, N), np.nan, dtype=np.float32) for f in fields}
        first = np.full(N, -1, dtype=np.int64)
        last = np.full(N, -1, dtype=np.int64)
        for j, sym in enumerate(syms):
            folder = folders.get(sym)
            if folder is None:
                raise DataError(f"{self._features_dir}: instrument {sym} has no features folder")
            span: tuple[int, int] | None = None
            for f in fields:
                path = folder / f"{f}{BIN_SUFFIX}"
                try:
                    s, values = read_bin(path, self.calendar, instrument=sym, field=f)
                except DataError:
                    if path.exists():
                        raise
                    path = _find_bin(folder, f, sym)  # another case of the file name
                    s, values = read_bin(path, self.calendar, instrument=sym, field=f)
                e = s + len(values) - 1
                if span is None:
                    span = (s, e)
                elif (s, e) != span:
                    cal = self.calendar
                    raise DataError(
                        f"{path}: {sym} {f}: stored span {_dates(cal, s, e)} does not match "
                        f"{fields[0]!r}'s {_dates(cal, *span)} (misaligned series)"
                    )
                a, b = max(s, lo), min(e, hi - 1)
                if a <= b:
                    arrays[f][a - lo : b - lo + 1, j] = values[a - s : b - s + 1]
            assert span is not None
            a, b = max(span[0], lo), min(span[1], hi - 1)
            if a <= b:
                first[j], last[j] = a - lo, b - lo
        membership = {m: spans_to_mask(sp, calendar, syms) for m, sp in market_spans.items()}
        return Panel(calendar, syms, arrays, first, last, membership)


def _find_bin(folder: Path, field: str, sym: str) -> Path:
    name = f"{field}{BIN_SUFFIX}".lower()
    for p in folder.iterdir():
        if p.name.lower() == name:
            return p
    raise DataError(f"{folder}: instrument {sym} has no {field!r} file ({field}{BIN_SUFFIX})")


def _dates(cal: pd.DatetimeIndex, s: int, e: int) -> str:
    end = cal[e].date() if e < len(cal) else f"index {e}"
    return f"{cal[s].date()} .. {end}" if e >= s else f"(empty, from {cal[s].date()})"
