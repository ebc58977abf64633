"""Validate a Qlib data directory: structure (errors), coverage (statistics), odd values (warnings).

Errors make the directory unusable or wrong for the loader: a missing or unsorted calendar, an
unreadable ``instruments/*.txt``, a ``.bin`` file that is truncated, runs past the calendar or is
misaligned with the instrument's other fields, a missing field, a market symbol without data.
Warnings name the instrument, field and date of values that are legal but suspicious.

>>> report = check_data_dir("../shared/data/cn_csi300")     # doctest: +SKIP
>>> report.ok, report.coverage.n_instruments
(True, 813)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from alstm.data.errors import DataError
from alstm.data.qlib_format import (
    BIN_SUFFIX,
    Span,
    find_child,
    read_bin,
    read_calendar,
    read_instruments,
    spans_to_mask,
)

PRICE_FIELDS = ("open", "high", "low", "close", "vwap")
JUMP = 0.25  # a daily close move beyond this, with an unchanged factor, is suspicious
VWAP_TOL = 1e-3  # vwap comes from rounded turnover: allow this relative slack around [low, high]
CHANGE_TOL = 1e-4  # stored change vs close / previous stored close - 1 (float32 rounding)
MAX_PER_KIND = 1000  # findings kept per kind; counts stay exact


@dataclass(frozen=True)
class Finding:
    """One problem: a short ``kind``, a message, and where it is (any of them may be unknown)."""

    kind: str
    message: str
    instrument: str | None = None
    field: str | None = None
    date: pd.Timestamp | None = None
    path: Path | None = None

    def __str__(self) -> str:
        where = " ".join(
            str(x)
            for x in (self.instrument, self.field, None if self.date is None else self.date.date())
            if x is not None
        )
        return f"{self.kind}: {where + ': ' if where else ''}{self.message}"


@dataclass(frozen=True)
class MarketStats:
    """Members of one ``instruments/<market>.txt``: symbols, rows and members per calendar day
    (over the days between its first start and last end)."""

    n_symbols: int
    n_spans: int
    members_min: int
    members_median: float
    members_max: int


@dataclass
class Coverage:
    """What the directory holds."""

    n_instruments: int = 0
    fields: tuple[str, ...] = ()
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    n_days: int = 0
    n_rows: int = 0  # instrument-days inside the stored spans
    nan_share: dict[str, float] = field(default_factory=dict)  # per field, inside the spans
    markets: dict[str, MarketStats] = field(default_factory=dict)


@dataclass
class CheckReport:
    """Errors, warnings (``MAX_PER_KIND`` kept per kind, all counted) and coverage."""

    root: Path
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    warning_counts: Counter[str] = field(default_factory=Counter)  # exact, per kind
    coverage: Coverage = field(default_factory=Coverage)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    @property
    def n_warnings(self) -> int:
        """Total number of warnings, including those not kept."""
        return sum(self.warning_counts.values())

    def warn(self, finding: Finding) -> None:
        """Count a warning and keep it unless its kind already has ``MAX_PER_KIND``."""
        if self.warning_counts[finding.kind] < MAX_PER_KIND:
            self.warnings.append(finding)
        self.warning_counts[finding.kind] += 1

    def render(self, console: Console, max_warnings: int = 20) -> None:
        """Print coverage, markets, errors and (the first ``max_warnings``) warnings as tables."""
        cov = self.coverage
        console.rule(f"[bold]data check: {self.root}")
        span = f"{cov.start.date()} .. {cov.end.date()}" if cov.start is not None else "-"
        summary = Table(title="coverage", show_header=False)
        summary.add_column(style="bold")
        summary.add_column()
        summary.add_row("calendar", f"{cov.n_days} days, {span}")
        summary.add_row("instruments", str(cov.n_instruments))
        summary.add_row("rows in stored spans", f"{cov.n_rows:,}")
        summary.add_row("fields", " ".join(cov.fields))
        console.print(summary)
        if cov.nan_share:
            nans = Table(title="NaN share inside stored spans")
            nans.add_column("field")
            nans.add_column("NaN", justify="right")
            for name, share in cov.nan_share.items():
                nans.add_row(name, f"{share:.2%}")
            console.print(nans)
        if cov.markets:
            markets = Table(title="markets")
            for col in ("market", "symbols", "spans", "members/day min", "median", "max"):
                markets.add_column(col, justify="left" if col == "market" else "right")
            for name, m in cov.markets.items():
                markets.add_row(
                    name, str(m.n_symbols), str(m.n_spans), str(m.members_min),
                    f"{m.members_median:g}", str(m.members_max),
                )  # fmt: skip
            console.print(markets)
        if self.errors:
            console.print(_findings_table(f"[red]{len(self.errors)} errors", self.errors, 50))
        if self.warning_counts:
            counts = Table(title=f"[yellow]{self.n_warnings} warnings by kind")
            counts.add_column("kind")
            counts.add_column("count", justify="right")
            for kind, n in self.warning_counts.most_common():
                counts.add_row(kind, str(n))
            console.print(counts)
            console.print(_findings_table("[yellow]warnings", self.warnings, max_warnings))
            if self.n_warnings > max_warnings:
                console.print(f"… {self.n_warnings - max_warnings} more warnings not shown")
        verdict = "[green]OK[/]" if self.ok else f"[red]{len(self.errors)} errors[/]"
        console.print(f"{verdict}, {self.n_warnings} warnings")


def _findings_table(title: str, findings: list[Finding], limit: int) -> Table:
    table = Table(title=title)
    for col in ("kind", "instrument", "field", "date", "detail"):
        table.add_column(col, overflow="fold")
    for f in findings[:limit]:
        date = "" if f.date is None else str(f.date.date())
        table.add_row(f.kind, f.instrument or "", f.field or "", date, f.message)
    return table


def check_data_dir(root: str | Path) -> CheckReport:
    """Check every file of a Qlib data directory; collect problems instead of stopping."""
    report = CheckReport(Path(root))
    root = report.root
    if not root.is_dir():
        report.errors.append(
            Finding("missing", f"{root}: data directory does not exist", path=root)
        )
        return report
    calendar = _check_calendar(root, report)
    markets = _check_markets(root, report)
    if calendar is None:
        report.errors.append(Finding("skipped", "features not checked: no usable calendar"))
        return report
    report.coverage.start, report.coverage.end = calendar[0], calendar[-1]
    report.coverage.n_days = len(calendar)
    stored = _read_features(root, calendar, report)
    if stored is None:
        return report
    symbols, arrays, first, last = stored
    _check_membership(markets, symbols, first, last, calendar, report)
    _check_values(symbols, arrays, first, last, calendar, report)
    return report


def _check_calendar(root: Path, report: CheckReport) -> pd.DatetimeIndex | None:
    try:
        return read_calendar(find_child(find_child(root, "calendars"), "day.txt", kind="file"))
    except DataError as e:
        report.errors.append(Finding("calendar", str(e)))
        return None


def _check_markets(root: Path, report: CheckReport) -> dict[str, dict[str, list[Span]]]:
    try:
        folder = find_child(root, "instruments")
    except DataError as e:
        report.errors.append(Finding("instruments", str(e)))
        return {}
    markets: dict[str, dict[str, list[Span]]] = {}
    for path in sorted(folder.glob("*.txt")):
        try:
            markets[path.stem.lower()] = read_instruments(path)
        except DataError as e:
            report.errors.append(Finding("instruments", str(e), path=path))
    if "all" not in markets and not any("all.txt" in e.message for e in report.errors):
        report.errors.append(Finding("instruments", f"{folder}: no all.txt (Qlib's 'all' market)"))
    return markets


def _read_features(
    root: Path, calendar: pd.DatetimeIndex, report: CheckReport
) -> tuple[tuple[str, ...], dict[str, np.ndarray], np.ndarray, np.ndarray] | None:
    """``(symbols, {field: float32 [T, N]}, first, last)`` of every readable series."""
    try:
        features = find_child(root, "features")
    except DataError as e:
        report.errors.append(Finding("features", str(e)))
        return None
    folders = sorted((p for p in features.iterdir() if p.is_dir()), key=lambda p: p.name.upper())
    if not folders:
        report.errors.append(Finding("features", f"{features}: no instrument folders"))
        return None
    T = len(calendar)
    series: list[dict[str, tuple[int, np.ndarray]]] = []
    present: list[set[str]] = []  # fields with a file, readable or not
    for folder in folders:
        sym = folder.name.upper()
        got: dict[str, tuple[int, np.ndarray]] = {}
        present.append(set())
        for path in sorted(folder.iterdir()):
            if not path.name.lower().endswith(BIN_SUFFIX):
                continue
            name = path.name[: -len(BIN_SUFFIX)].lower()
            present[-1].add(name)
            try:
                got[name] = read_bin(path, calendar, instrument=sym, field=name)
            except DataError as e:
                report.errors.append(Finding("unreadable", str(e), sym, name, path=path))
        series.append(got)
        spans = {(s, s + len(v) - 1) for s, v in got.values()}
        if len(spans) > 1:
            detail = ", ".join(
                f"{f} {_span_text(calendar, s, s + len(v) - 1)}"
                for f, (s, v) in sorted(got.items())
            )
            report.errors.append(
                Finding("misaligned", f"{folder}: fields have different spans: {detail}", sym)
            )
    symbols = tuple(p.name.upper() for p in folders)
    fields = sorted(set().union(*present))
    arrays = {f: np.full((T, len(symbols)), np.nan, dtype=np.float32) for f in fields}
    first = np.full(len(symbols), -1, dtype=np.int64)
    last = np.full(len(symbols), -1, dtype=np.int64)
    for j, (folder, got) in enumerate(zip(folders, series, strict=True)):
        if not present[j]:
            report.errors.append(Finding("missing", f"{folder}: no {BIN_SUFFIX} files", symbols[j]))
        for f in fields:
            if f not in present[j] and present[j]:
                report.errors.append(
                    Finding("missing", f"{folder}: no {f}{BIN_SUFFIX} file", symbols[j], f)
                )
        for f, (s, v) in got.items():
            arrays[f][s : s + len(v), j] = v
        if got:
            first[j] = min(s for s, _ in got.values())
            last[j] = max(s + len(v) - 1 for s, v in got.values())
    cov = report.coverage
    cov.n_instruments, cov.fields = len(symbols), tuple(fields)
    rows = np.arange(T)[:, None]
    in_span = (rows >= first) & (rows <= last)
    cov.n_rows = int(in_span.sum())
    cov.nan_share = {
        f: float(np.isnan(a[in_span]).mean()) if cov.n_rows else 0.0 for f, a in arrays.items()
    }
    return symbols, arrays, first, last


def _span_text(calendar: pd.DatetimeIndex, s: int, e: int) -> str:
    if e < s:
        return "(empty)"
    return f"{calendar[s].date()} .. {calendar[min(e, len(calendar) - 1)].date()}"


def _check_membership(
    markets: dict[str, dict[str, list[Span]]],
    symbols: tuple[str, ...],
    first: np.ndarray,
    last: np.ndarray,
    calendar: pd.DatetimeIndex,
    report: CheckReport,
) -> None:
    """Market symbols need data; ``all.txt`` spans should equal the stored spans."""
    col = {s: j for j, s in enumerate(symbols)}
    for name, spans in markets.items():
        missing = sorted(set(spans) - set(col))
        for sym in missing[:MAX_PER_KIND]:
            report.errors.append(
                Finding(
                    "no data",
                    f"instruments/{name}.txt lists {sym}, which has no features folder",
                    sym,
                )
            )
        if len(missing) > MAX_PER_KIND:
            report.errors.append(Finding("no data", f"… and {len(missing) - MAX_PER_KIND} more"))
        mask = spans_to_mask(spans, calendar, tuple(spans))
        lo = min((s for rows in spans.values() for s, _ in rows), default=None)
        hi = max((e for rows in spans.values() for _, e in rows), default=None)
        days = (
            (calendar >= lo) & (calendar <= hi) if lo is not None else np.zeros(len(calendar), bool)
        )
        counts = mask[days].sum(1) if days.any() else np.zeros(1, dtype=np.int64)
        report.coverage.markets[name] = MarketStats(
            n_symbols=len(spans),
            n_spans=sum(len(r) for r in spans.values()),
            members_min=int(counts.min()),
            members_median=float(np.median(counts)),
            members_max=int(counts.max()),
        )
    all_spans = markets.get("all")
    if all_spans is None:
        return
    for j, sym in enumerate(symbols):
        if first[j] < 0:
            continue
        stored = (calendar[first[j]], calendar[last[j]])
        listed = all_spans.get(sym)
        if listed is None:
            report.warn(
                Finding("not in all.txt", "has data but is not listed in instruments/all.txt", sym)
            )
        elif (min(s for s, _ in listed), max(e for _, e in listed)) != stored:
            text = ", ".join(f"{s.date()} .. {e.date()}" for s, e in listed)
            report.warn(
                Finding(
                    "all.txt span",
                    f"all.txt lists {text}, the stored series spans "
                    f"{stored[0].date()} .. {stored[1].date()}",
                    sym,
                )
            )


def _check_values(
    symbols: tuple[str, ...],
    arrays: dict[str, np.ndarray],
    first: np.ndarray,
    last: np.ndarray,
    calendar: pd.DatetimeIndex,
    report: CheckReport,
) -> None:
    """Suspicious values, vectorized over ``[T, N]``; each becomes a warning with its location."""

    def flag(
        kind: str, field_name: str, mask: np.ndarray, describe: Callable[[int, int], str]
    ) -> None:
        hits = np.argwhere(mask.T)  # (instrument, row), sorted by instrument then date
        room = max(MAX_PER_KIND - report.warning_counts[kind], 0)
        for j, t in hits[:room]:
            report.warnings.append(
                Finding(kind, describe(t, j), symbols[j], field_name, calendar[t])
            )
        if len(hits):
            report.warning_counts[kind] += len(hits)

    def get(name: str) -> np.ndarray | None:
        a = arrays.get(name)
        return None if a is None else a.astype(np.float64)

    with np.errstate(invalid="ignore", divide="ignore"):
        for name in PRICE_FIELDS:
            a = get(name)
            if a is not None:
                flag("non-positive price", name, a <= 0, lambda t, j, a=a: f"{a[t, j]:g}")
        o, h, lo, c, vw = (get(n) for n in PRICE_FIELDS)
        if h is not None and lo is not None:
            flag(
                "high < low",
                "high/low",
                h < lo,
                lambda t, j: f"high {h[t, j]:g} < low {lo[t, j]:g}",
            )
            for name, x, tol in (("close", c, 0.0), ("open", o, 0.0), ("vwap", vw, VWAP_TOL)):
                if x is None:
                    continue
                # float32 rounding of raw × factor keeps order, so only vwap needs slack
                bad = (x > h * (1 + tol)) | (x < lo * (1 - tol))
                flag(
                    f"{name} outside [low, high]",
                    name,
                    bad,
                    lambda t, j, x=x, n=name: (
                        f"{n} {x[t, j]:g} outside [{lo[t, j]:g}, {h[t, j]:g}]"
                    ),
                )
        for name in ("volume", "amount"):
            a = get(name)
            if a is not None:
                flag(f"negative {name}", name, a < 0, lambda t, j, a=a: f"{a[t, j]:g}")
        fac = get("factor")
        if fac is not None:
            flag("factor <= 0", "factor", fac <= 0, lambda t, j: f"{fac[t, j]:g}")
        if c is None:
            return
        prev_row = _previous_row(c)
        cols = np.arange(c.shape[1])
        prev_c = np.where(prev_row >= 0, c[np.maximum(prev_row, 0), cols], np.nan)
        move = c / prev_c - 1

        def where(t: int, j: int) -> str:
            return f"from {calendar[prev_row[t, j]].date()}"

        same_factor = True
        if fac is not None:
            prev_f = np.where(prev_row >= 0, fac[np.maximum(prev_row, 0), cols], np.nan)
            same_factor = np.abs(fac / prev_f - 1) < 1e-6
        flag(
            f"close jump > {JUMP:.0%}",
            "close",
            (np.abs(move) > JUMP) & same_factor,
            lambda t, j: (
                f"close {move[t, j]:+.1%} {where(t, j)} ({prev_c[t, j]:g} → "
                f"{c[t, j]:g}) without a factor change"
            ),
        )
        chg = get("change")
        if chg is not None:
            flag(
                "change inconsistent",
                "change",
                np.abs(chg - move) > CHANGE_TOL,
                lambda t, j: (
                    f"change {chg[t, j]:.6g} but close / previous close - 1 = "
                    f"{move[t, j]:.6g} ({where(t, j)})"
                ),
            )


def _previous_row(values: np.ndarray) -> np.ndarray:
    """``int [T, N]``: the row of the previous non-NaN value in each column (-1 if none)."""
    T = values.shape[0]
    rows = np.where(~np.isnan(values), np.arange(T)[:, None], -1)
    seen = np.maximum.accumulate(rows, axis=0)
    out = np.full_like(seen, -1)
    out[1:] = seen[:-1]
    return out
