"""Qlib's on-disk format: calendar, instrument spans and ``<field>.day.bin`` series.

A data directory holds ``calendars/day.txt`` (one ``YYYY-MM-DD`` a line),
``instruments/<market>.txt`` (``SYMBOL<TAB>start<TAB>end``, several rows per symbol allowed) and
``features/<symbol lower>/<field>.day.bin``: little-endian float32, the first value is the calendar
index of the series' first day, then one value per calendar day. Folder names match
case-insensitively, as Qlib's do on case-insensitive file systems.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alstm.data.errors import DataError

FREQ = "day"
BIN_SUFFIX = f".{FREQ}.bin"

Span = tuple[pd.Timestamp, pd.Timestamp]


def find_child(parent: Path, name: str, *, kind: str = "folder") -> Path:
    """The entry of ``parent`` named ``name``, matched case-insensitively."""
    exact = parent / name
    if exact.exists():
        return exact
    if parent.is_dir():
        for child in parent.iterdir():
            if child.name.lower() == name.lower():
                return child
    raise DataError(f"{parent}: no {kind} named {name!r} (matched case-insensitively)")


def read_calendar(path: Path) -> pd.DatetimeIndex:
    """Trading days of a ``calendars/day.txt`` file; must be sorted and unique."""
    if not path.is_file():
        raise DataError(f"{path}: calendar file is missing")
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise DataError(f"{path}: calendar is empty")
    try:
        cal = pd.DatetimeIndex(pd.to_datetime(lines, format="%Y-%m-%d"))
    except (ValueError, TypeError):
        for i, ln in enumerate(lines, 1):
            try:
                pd.to_datetime(ln, format="%Y-%m-%d")
            except (ValueError, TypeError):
                raise DataError(
                    f"{path}:{i}: unparsable date {ln!r}, expected YYYY-MM-DD"
                ) from None
        raise
    bad = np.nonzero(np.diff(cal.values) <= np.timedelta64(0))[0]
    if len(bad):
        i = int(bad[0]) + 1
        what = "duplicate" if cal[i] == cal[i - 1] else "unsorted"
        raise DataError(f"{path}:{i + 1}: {what} date {cal[i].date()} after {cal[i - 1].date()}")
    return cal


def read_instruments(path: Path) -> dict[str, list[Span]]:
    """Spans per symbol of an ``instruments/<market>.txt`` file (symbols upper-cased)."""
    if not path.is_file():
        raise DataError(f"{path}: instruments file is missing")
    rows: list[tuple[int, list[str]]] = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise DataError(f"{path}:{i}: expected 'SYMBOL<TAB>start<TAB>end', got {line!r}")
        rows.append((i, parts))
    starts = pd.to_datetime([p[1] for _, p in rows], errors="coerce", format="mixed")
    ends = pd.to_datetime([p[2] for _, p in rows], errors="coerce", format="mixed")
    unparsable = np.flatnonzero(starts.isna() | ends.isna())
    if len(unparsable):
        i, (sym, s, e) = rows[unparsable[0]]
        raise DataError(f"{path}:{i}: {sym}: unparsable date in {sym} {s} {e}")
    backwards = np.flatnonzero(ends < starts)
    if len(backwards):
        k = backwards[0]
        i, (sym, _, _) = rows[k]
        raise DataError(
            f"{path}:{i}: {sym}: span ends {ends[k].date()} before it starts {starts[k].date()}"
        )
    spans: dict[str, list[Span]] = {}
    for (_, (sym, _, _)), start, end in zip(rows, starts, ends, strict=True):
        spans.setdefault(sym.upper(), []).append((start, end))
    return spans


def spans_to_mask(
    spans: dict[str, list[Span]], calendar: pd.DatetimeIndex, instruments: tuple[str, ...]
) -> np.ndarray:
    """Boolean ``[T, N]``: True where the calendar day lies inside one of the symbol's spans."""
    mask = np.zeros((len(calendar), len(instruments)), dtype=bool)
    col = {s: j for j, s in enumerate(instruments)}
    cols, starts, ends = [], [], []
    for sym, rows in spans.items():
        j = col.get(sym)
        if j is not None:
            for start, end in rows:
                cols.append(j)
                starts.append(start)
                ends.append(end)
    if cols:
        lo = calendar.searchsorted(pd.DatetimeIndex(starts), side="left")
        hi = calendar.searchsorted(pd.DatetimeIndex(ends), side="right")
        for j, a, b in zip(cols, lo, hi, strict=True):
            mask[a:b, j] = True
    return mask


def mask_to_spans(
    mask: np.ndarray, calendar: pd.DatetimeIndex, instruments: tuple[str, ...]
) -> dict[str, list[Span]]:
    """Inverse of :func:`spans_to_mask`: the runs of True days per instrument."""
    spans: dict[str, list[Span]] = {}
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1]), dtype=np.int8)
    padded[1:-1] = mask
    edges = np.diff(padded, axis=0)
    for j, sym in enumerate(instruments):
        starts = np.nonzero(edges[:, j] == 1)[0]
        ends = np.nonzero(edges[:, j] == -1)[0] - 1
        if len(starts):
            spans[sym] = [(calendar[s], calendar[e]) for s, e in zip(starts, ends, strict=True)]
    return spans


def write_instruments(path: Path, spans: dict[str, list[Span]]) -> None:
    """Write ``SYMBOL<TAB>start<TAB>end`` rows, sorted by symbol then start."""
    lines = [
        f"{sym}\t{s:%Y-%m-%d}\t{e:%Y-%m-%d}" for sym in sorted(spans) for s, e in sorted(spans[sym])
    ]
    path.write_text("\n".join(lines) + "\n")


def read_bin(
    path: Path, calendar: pd.DatetimeIndex, *, instrument: str, field: str
) -> tuple[int, np.ndarray]:
    """``(start_index, values float32)`` of one ``.bin`` series, validated against the calendar."""
    try:
        buf = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: {instrument} has no {field!r} file") from None
    if len(buf) % 4:
        raise DataError(
            f"{path}: {instrument} {field}: size {len(buf)} bytes is not a multiple of 4 "
            "(truncated float32 file)"
        )
    raw = np.frombuffer(buf, dtype="<f4")
    if raw.size < 1:
        raise DataError(f"{path}: {instrument} {field}: empty file, expected a start index")
    start = float(raw[0])
    if not np.isfinite(start) or start != int(start) or start < 0:
        raise DataError(
            f"{path}: {instrument} {field}: start index {start!r} is not a non-negative integer"
        )
    start_i, n_cal = int(start), len(calendar)
    if start_i >= n_cal:
        raise DataError(
            f"{path}: {instrument} {field}: start index {start_i} is past the calendar end "
            f"({calendar[-1].date()}, index {n_cal - 1})"
        )
    if start_i + raw.size - 1 > n_cal:
        raise DataError(
            f"{path}: {instrument} {field}: {raw.size - 1} values from {calendar[start_i].date()} "
            f"run past the calendar end {calendar[-1].date()} by {start_i + raw.size - 1 - n_cal} "
            "days (misaligned series)"
        )
    return start_i, raw[1:]


def write_bin(path: Path, start_index: int, values: np.ndarray) -> None:
    """Write one series: the start index, then the values, as little-endian float32."""
    out = np.empty(len(values) + 1, dtype="<f4")
    out[0] = start_index
    out[1:] = values
    out.tofile(path)
