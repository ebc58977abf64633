"""Turn a folder of per-instrument daily CSV files into a Qlib data directory.

Each ``<symbol>.csv`` holds one instrument's raw (unadjusted) daily quotes, one row per trading
day. The stored fields follow the conventions of ``shared/data/cn_csi300``:

- ``factor``: the CSV's factor column, else adjusted close / close, else 1;
- ``open, high, low, close`` = raw × factor; ``volume`` = raw shares / factor;
- ``amount`` = the CSV's turnover, else raw close × raw volume;
- ``vwap`` = the CSV's (raw) vwap × factor, else amount / raw volume × factor;
- ``change`` = adjusted close / the previous row's adjusted close − 1 (NaN on the first row).

The calendar is the union of all dates. Rows whose prices are all empty are suspended days and are
dropped, as are rows with zero volume (the real data's convention). Nothing is written unless every
file parses; the directory itself is written atomically.

>>> import_csv("quotes/", "data/my_market", benchmark_csv="index.csv",
...            benchmark_symbol="SH000300", membership_csv="members.csv")   # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alstm.data.errors import DataError
from alstm.data.panel import Panel
from alstm.data.qlib_format import Span
from alstm.data.writer import write_qlib_dir

DEFAULT_COLUMNS: dict[str, str] = {
    "date": "date",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "amount": "amount",
    "vwap": "vwap",
    "factor": "factor",
    "adjclose": "adjclose",
}
REQUIRED = ("date", "open", "high", "low", "close", "volume")
BENCHMARK_REQUIRED = ("date", "close")
PRICES = ("open", "high", "low", "close", "vwap", "adjclose")
STORED = ("open", "high", "low", "close", "volume", "amount", "vwap", "factor", "change")
MISSING = frozenset({"", "nan", "NaN", "NAN", "null", "NULL", "None", "none", "-", "--"})

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class _Series:
    """One instrument's rows: dates ``[R]`` and stored fields, float64 ``[R]`` each."""

    symbol: str
    dates: pd.DatetimeIndex
    fields: dict[str, np.ndarray]


def import_csv(
    src_dir: str | Path,
    dst_dir: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    date_format: str | None = None,
    glob: str = "*.csv",
    symbol_pattern: str | None = None,
    upper: bool = True,
    prefix: str = "",
    benchmark_csv: str | Path | None = None,
    benchmark_symbol: str | None = None,
    membership_csv: str | Path | None = None,
    market: str | None = None,
    drop_zero_volume: bool = True,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Import ``src_dir/<glob>`` (one CSV per instrument) into a Qlib directory at ``dst_dir``.

    - ``columns``: our field → CSV column name, over :data:`DEFAULT_COLUMNS` (names match
      case-insensitively, ignoring spaces, ``_`` and ``-``: ``Adj Close`` finds ``adjclose``).
    - symbol: the file name without its suffix, or the ``symbol`` group (else group 1, else the
      match) of ``symbol_pattern`` searched in it; upper-cased if ``upper``; ``prefix`` prepended
      unless already there. The same normalisation applies to membership symbols.
    - ``benchmark_csv``: an index (only date and close required), stored with factor 1 and vwap NaN
      under ``benchmark_symbol`` (default: its file's symbol).
    - ``membership_csv``: ``symbol,start,end`` rows (header optional), written as
      ``instruments/<market>.txt`` (``market`` defaults to the file's stem). Without it, a
      ``market`` other than ``all`` lists every stock over its stored span.
    - ``progress(done, total, what)`` is called after each file and after writing.
    """
    src, dst = Path(src_dir), Path(dst_dir)
    if not src.is_dir():
        raise DataError(f"{src}: CSV folder does not exist")
    if dst.exists() and not overwrite and not (dst.is_dir() and not any(dst.iterdir())):
        raise DataError(f"{dst}: already exists (pass overwrite to replace it)")
    mapping = _mapping(columns)
    explicit = set(columns or ())
    extras = {Path(p).resolve() for p in (benchmark_csv, membership_csv) if p is not None}
    files = sorted(p for p in src.glob(glob) if p.is_file() and p.resolve() not in extras)
    if not files:
        raise DataError(f"{src}: no files matching {glob!r}")
    norm = _normaliser(symbol_pattern, upper, prefix)
    total = len(files) + (benchmark_csv is not None) + 1
    series: dict[str, _Series] = {}
    origin: dict[str, Path] = {}
    for i, path in enumerate(files, 1):
        sym = norm(_stem(path), path)
        if sym in series:
            raise DataError(f"{path}: symbol {sym} already read from {origin[sym]}")
        table = _read_table(path, sym, mapping, REQUIRED, explicit, date_format, drop_zero_volume)
        series[sym], origin[sym] = _stock_fields(table, sym), path
        if progress:
            progress(i, total, sym)
    stocks = tuple(series)
    if benchmark_csv is not None:
        path = Path(benchmark_csv)
        sym = norm(_stem(path), path) if benchmark_symbol is None else benchmark_symbol.upper()
        if sym in series:
            raise DataError(f"{path}: benchmark symbol {sym} is also a stock ({origin[sym]})")
        table = _read_table(path, sym, mapping, BENCHMARK_REQUIRED, set(), date_format, False)
        series[sym] = _benchmark_fields(table, sym)
        if progress:
            progress(len(files) + 1, total, sym)
    panel = _panel(series)
    markets: dict[str, dict[str, list[Span]]] = {}
    if membership_csv is not None:
        name = market or Path(membership_csv).stem
        if name.lower() == "all":
            raise DataError(f"{membership_csv}: name the membership market (not 'all')")
        markets[name] = _read_membership(Path(membership_csv), norm, set(series))
    elif market is not None and market.lower() != "all":
        cal = panel.calendar
        col = {s: j for j, s in enumerate(panel.instruments)}
        markets[market] = {s: [(cal[panel.first[col[s]]], cal[panel.last[col[s]]])] for s in stocks}
    out = write_qlib_dir(panel, dst, markets=markets, overwrite=overwrite)
    if progress:
        progress(total, total, "written")
    return out


# ------------------------------------------------------------------------------------ symbols


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".csv.gz", ".csv.bz2", ".csv.zip", ".csv", ".txt"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _normaliser(pattern: str | None, upper: bool, prefix: str) -> Callable[[str, Path], str]:
    """``(text, file) -> symbol`` applying the pattern, case and prefix options."""
    regex = re.compile(pattern) if pattern else None

    def norm(text: str, path: Path) -> str:
        sym = text.strip()
        if regex is not None:
            m = regex.search(sym)
            if m is None:
                raise DataError(f"{path}: {sym!r} does not match symbol pattern {pattern!r}")
            if "symbol" in regex.groupindex:
                sym = m.group("symbol")
            else:
                sym = m.group(1) if regex.groups else m.group(0)
        if upper:
            sym = sym.upper()
        if prefix and not sym.upper().startswith(prefix.upper()):
            sym = prefix + sym
        if not sym or re.search(r"[\s/\\]", sym):
            raise DataError(f"{path}: symbol {sym!r} is empty or has spaces or slashes")
        return sym

    return norm


# ------------------------------------------------------------------------------------ reading


def _mapping(columns: Mapping[str, str] | None) -> dict[str, str]:
    unknown = sorted(set(columns or ()) - set(DEFAULT_COLUMNS))
    if unknown:
        raise DataError(f"unknown field(s) {unknown} in columns; known: {list(DEFAULT_COLUMNS)}")
    return {**DEFAULT_COLUMNS, **(columns or {})}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def _read_table(
    path: Path,
    sym: str,
    mapping: dict[str, str],
    required: tuple[str, ...],
    explicit: set[str],
    date_format: str | None,
    drop_zero_volume: bool,
) -> pd.DataFrame:
    """Frame indexed by date (sorted) with one float64 column per mapped field found."""
    where = f"{path}: {sym}"
    try:
        raw = pd.read_csv(
            path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig"
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{where}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{where}: not a readable CSV file ({e})") from None
    found = {_key(c): c for c in raw.columns}
    cols: dict[str, str] = {}
    missing = []
    for fld, name in mapping.items():
        col = name if name in raw.columns else found.get(_key(name))
        if col is not None:
            cols[fld] = col
        elif fld in required or fld in explicit:
            missing.append(f"{fld} → {name!r}")
    if missing:
        raise DataError(
            f"{where}: missing column(s) {', '.join(missing)}; columns found: {list(raw.columns)}"
        )
    if raw.empty:
        raise DataError(f"{where}: empty file (a header but no rows)")
    lines = np.arange(len(raw)) + 2  # file line of each row (the header is line 1)
    text = {f: raw[c].astype(str).str.strip() for f, c in cols.items()}
    empty = {f: s.isin(MISSING).to_numpy() for f, s in text.items()}
    price_cols = [f for f in ("open", "high", "low", "close") if f in cols]
    suspended = np.logical_and.reduce([empty[f] for f in price_cols])
    dates = _parse_dates(text["date"], empty["date"], where, cols["date"], lines, date_format)
    values: dict[str, np.ndarray] = {}
    for f in cols:
        if f == "date":
            continue
        num = pd.to_numeric(text[f].where(~empty[f]), errors="coerce").to_numpy(np.float64)
        bad = np.isnan(num) & ~empty[f]
        _fail_at(bad, where, cols[f], lines, dates, "is not a number", text[f])
        if f in required or f in ("factor", "adjclose"):
            _fail_at(empty[f] & ~suspended, where, cols[f], lines, dates, "is empty", text[f])
        values[f] = num
    keep = ~suspended
    if drop_zero_volume and "volume" in values:
        keep &= ~(values["volume"] == 0)
    for f in values:
        if f in PRICES or f == "factor":
            what = "is not a positive price" if f != "factor" else "is not a positive factor"
            _fail_at(keep & (values[f] <= 0), where, cols[f], lines, dates, what, text[f])
        else:
            _fail_at(keep & (values[f] < 0), where, cols[f], lines, dates, "is negative", text[f])
    frame = pd.DataFrame(
        {f: v[keep] for f, v in values.items()}, index=pd.DatetimeIndex(dates[keep])
    )
    kept_lines = lines[keep]
    dup = frame.index.duplicated(keep=False)
    if dup.any():
        d = frame.index[dup][0]
        at = kept_lines[frame.index == d]
        raise DataError(
            f"{where}: column {cols['date']!r}: duplicate date {d.date()} on lines "
            f"{', '.join(map(str, at))}"
        )
    if frame.empty:
        raise DataError(f"{where}: no rows with data (every row is suspended or has zero volume)")
    return frame.sort_index()


def _parse_dates(
    text: pd.Series,
    empty: np.ndarray,
    where: str,
    column: str,
    lines: np.ndarray,
    date_format: str | None,
) -> np.ndarray:
    """``datetime64[ns] [R]`` at midnight; raise on the first unparsable or empty date."""
    try:
        parsed = pd.to_datetime(text.where(~empty), format=date_format, errors="coerce")
    except (ValueError, TypeError) as e:
        raise DataError(f"{where}: column {column!r}: cannot parse dates ({e})") from None
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        hint = f" with format {date_format!r}" if date_format else " (pass a date format)"
        raise DataError(
            f"{where}: column {column!r}, line {lines[i]}: unparsable date {text.iloc[i]!r}{hint}"
        )
    return parsed.dt.normalize().to_numpy("datetime64[ns]")


def _fail_at(
    bad: np.ndarray,
    where: str,
    column: str,
    lines: np.ndarray,
    dates: np.ndarray,
    what: str,
    text: pd.Series,
) -> None:
    if bad.any():
        i = int(np.argmax(bad))
        n = int(bad.sum())
        more = f" ({n - 1} more rows like it)" if n > 1 else ""
        raise DataError(
            f"{where}: column {column!r}, line {lines[i]} ({pd.Timestamp(dates[i]).date()}): "
            f"value {text.iloc[i]!r} {what}{more}"
        )


# ------------------------------------------------------------------------------------- fields


def _stock_fields(t: pd.DataFrame, sym: str) -> _Series:
    """Stored fields of a stock from its raw columns (see the module docstring)."""
    close = t["close"].to_numpy()
    if "factor" in t:
        factor = t["factor"].to_numpy()
    elif "adjclose" in t:
        factor = t["adjclose"].to_numpy() / close
    else:
        factor = np.ones(len(t))
    volume = t["volume"].to_numpy()
    amount = t["amount"].to_numpy() if "amount" in t else close * volume
    with np.errstate(divide="ignore", invalid="ignore"):
        vwap = (
            t["vwap"].to_numpy() if "vwap" in t else np.where(volume > 0, amount / volume, np.nan)
        )
    adj_close = close * factor
    out = {f: t[f].to_numpy() * factor for f in ("open", "high", "low")}
    out |= {
        "close": adj_close,
        "volume": volume / factor,
        "amount": amount,
        "vwap": vwap * factor,
        "factor": factor,
        "change": _change(adj_close),
    }
    return _Series(sym, pd.DatetimeIndex(t.index), out)


def _benchmark_fields(t: pd.DataFrame, sym: str) -> _Series:
    """An index: prices as given, factor 1, vwap NaN, volume/amount as given (else NaN)."""
    n = len(t)
    nan = np.full(n, np.nan)
    close = t["close"].to_numpy()
    out = {f: t[f].to_numpy() if f in t else nan.copy() for f in ("open", "high", "low")}
    out |= {
        "close": close,
        "volume": t["volume"].to_numpy() if "volume" in t else nan.copy(),
        "amount": t["amount"].to_numpy() if "amount" in t else nan.copy(),
        "vwap": nan.copy(),
        "factor": np.ones(n),
        "change": _change(close),
    }
    return _Series(sym, pd.DatetimeIndex(t.index), out)


def _change(close: np.ndarray) -> np.ndarray:
    out = np.full(len(close), np.nan)
    out[1:] = close[1:] / close[:-1] - 1
    return out


def _panel(series: dict[str, _Series]) -> Panel:
    """Dense float32 panel over the union calendar; instruments sorted."""
    calendar = pd.DatetimeIndex(
        np.unique(np.concatenate([s.dates.to_numpy("datetime64[ns]") for s in series.values()]))
    )
    syms = tuple(sorted(series))
    T, N = len(calendar), len(syms)
    fields = {f: np.full((T, N), np.nan, dtype=np.float32) for f in STORED}
    first = np.empty(N, dtype=np.int64)
    last = np.empty(N, dtype=np.int64)
    for j, sym in enumerate(syms):
        s = series[sym]
        rows = calendar.get_indexer(s.dates)
        first[j], last[j] = rows[0], rows[-1]
        for f in STORED:
            fields[f][rows, j] = s.fields[f]
    return Panel(calendar, syms, fields, first, last)


# --------------------------------------------------------------------------------- membership


def _read_membership(
    path: Path, norm: Callable[[str, Path], str], known: set[str]
) -> dict[str, list[Span]]:
    """Spans per symbol of a ``symbol,start,end`` file (comma or tab separated, header optional)."""
    if not path.is_file():
        raise DataError(f"{path}: membership file does not exist")
    spans: dict[str, list[Span]] = {}
    first = True
    for i, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in re.split(r"[,\t]", line)]
        if len(parts) != 3:
            raise DataError(f"{path}, line {i}: expected 'symbol,start,end', got {line!r}")
        sym, start, end = parts[0], _date_or_none(parts[1]), _date_or_none(parts[2])
        if start is None or end is None:
            if first:  # a header line
                first = False
                continue
            raise DataError(f"{path}, line {i}: {sym}: unparsable date in {line!r}")
        first = False
        sym = norm(sym, path)
        if end < start:
            raise DataError(
                f"{path}, line {i}: {sym}: span ends {end.date()} before it starts {start.date()}"
            )
        if sym not in known:
            raise DataError(f"{path}, line {i}: {sym} has no imported CSV file")
        spans.setdefault(sym, []).append((start, end))
    if not spans:
        raise DataError(f"{path}: no membership rows")
    return spans


def _date_or_none(text: str) -> pd.Timestamp | None:
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        return None
    return None if pd.isna(ts) else ts.normalize()
