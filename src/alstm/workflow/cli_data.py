"""``alstm data …``: make a synthetic market, check a data directory, import CSV files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from alstm.data.check import check_data_dir
from alstm.data.csv_import import DEFAULT_COLUMNS, import_csv
from alstm.data.errors import DataError
from alstm.data.provider import QlibDataDir
from alstm.data.synth import write_synth

data_app = typer.Typer(
    help="Create, check and import Qlib-format data directories.", no_args_is_help=True
)

DATA_ERROR_EXIT = 2  # bad data or arguments; `check` exits 1 when it finds errors


@contextmanager
def _data_errors() -> Iterator[None]:
    """Turn a DataError into one red line on stderr and exit code 2 (no traceback)."""
    try:
        yield
    except DataError as e:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(DATA_ERROR_EXIT) from None


@data_app.command()
def synth(
    dst: Annotated[Path, typer.Argument(help="Folder to create.")],
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same bytes.")] = 0,
    instruments: Annotated[int, typer.Option(help="Number of stocks.")] = 300,
    members: Annotated[int, typer.Option(help="Members of the syn100-style market.")] = 100,
    start: Annotated[str, typer.Option(help="First calendar day (YYYY-MM-DD).")] = "2014-01-01",
    end: Annotated[str, typer.Option(help="Last calendar day (YYYY-MM-DD).")] = "2020-12-31",
    overwrite: Annotated[bool, typer.Option(help="Replace DST if it exists.")] = False,
) -> None:
    """Write a synthetic daily market (stocks, benchmark, membership) in Qlib's format."""
    with _data_errors():
        try:
            path = write_synth(
                dst, seed=seed, overwrite=overwrite, n_instruments=instruments,
                n_members=members, start=start, end=end,
            )  # fmt: skip
        except ValueError as e:  # bad sizes or dates
            raise DataError(str(e)) from None
        data = QlibDataDir(path)
        cal = data.calendar
        markets = ", ".join(f"{m} ({len(data.instruments(m))} symbols)" for m in data.markets())
        Console().print(
            f"wrote {escape(str(path))}: {len(data.instruments())} instruments, {len(cal)} days "
            f"{cal[0].date()} .. {cal[-1].date()}, markets {markets}, seed {seed}",
            soft_wrap=True,
        )


@data_app.command()
def check(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Qlib data directory.")],
    max_warnings: Annotated[int, typer.Option(help="Warnings listed (all are counted).")] = 20,
) -> None:
    """Check a data directory: structure (errors, exit code 1), coverage, suspicious values."""
    with _data_errors():
        report = check_data_dir(directory)
    report.render(Console(), max_warnings=max_warnings)
    if not report.ok:
        raise typer.Exit(1)


def _parse_cols(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        fld, sep, name = item.partition("=")
        if not sep or not fld.strip() or not name.strip():
            raise DataError(f"--col {item!r}: expected FIELD=COLUMN, e.g. adjclose='Adj Close'")
        out[fld.strip().lower()] = name.strip()
    return out


@data_app.command("import-csv")
def import_csv_cmd(
    src: Annotated[Path, typer.Argument(help="Folder of per-instrument CSV files.")],
    dst: Annotated[Path, typer.Argument(help="Qlib data directory to create.")],
    col: Annotated[
        list[str] | None,
        typer.Option(
            metavar="FIELD=COLUMN",
            help=f"CSV column of a field (repeatable); fields: {', '.join(DEFAULT_COLUMNS)}.",
            show_default=False,
        ),
    ] = None,
    date_format: Annotated[
        str | None, typer.Option(help="strftime format of the date column, e.g. %Y%m%d.")
    ] = None,
    glob: Annotated[str, typer.Option(help="Which files of SRC to read.")] = "*.csv",
    symbol_pattern: Annotated[
        str | None, typer.Option(help="Regex on the file name; group 'symbol' (or 1) is used.")
    ] = None,
    upper: Annotated[bool, typer.Option(help="Upper-case symbols.")] = True,
    prefix: Annotated[str, typer.Option(help="Prepend to symbols lacking it, e.g. SH.")] = "",
    benchmark: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Index CSV (date, close required).")
    ] = None,
    benchmark_symbol: Annotated[
        str | None, typer.Option(metavar="SYM", help="Symbol of the benchmark.")
    ] = None,
    membership: Annotated[
        Path | None, typer.Option(metavar="FILE", help="symbol,start,end rows of a market.")
    ] = None,
    market: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Market name (default: the membership file's stem)."),
    ] = None,
    keep_zero_volume: Annotated[
        bool, typer.Option(help="Keep rows with zero volume (default: they are suspensions).")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace DST if it exists.")] = False,
) -> None:
    """Import one CSV of raw daily quotes per instrument into a Qlib data directory."""
    console = Console(stderr=True)
    with _data_errors():
        columns = _parse_cols(col or [])
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("reading", total=None)

            def progress(done: int, total: int, what: str) -> None:
                bar.update(task, completed=done, total=total, description=what)

            path = import_csv(
                src, dst, columns=columns, date_format=date_format, glob=glob,
                symbol_pattern=symbol_pattern, upper=upper, prefix=prefix,
                benchmark_csv=benchmark, benchmark_symbol=benchmark_symbol,
                membership_csv=membership, market=market,
                drop_zero_volume=not keep_zero_volume, overwrite=overwrite, progress=progress,
            )  # fmt: skip
        data = QlibDataDir(path)
        cal = data.calendar
        Console().print(
            f"wrote {escape(str(path))}: {len(data.instruments())} instruments, {len(cal)} days "
            f"{cal[0].date()} .. {cal[-1].date()}, markets {', '.join(data.markets())}",
            soft_wrap=True,
        )
