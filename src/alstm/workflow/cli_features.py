"""``alstm features``: compute a factor set (and the label) and write it as Parquet."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer
from rich.console import Console

from alstm.data.errors import DataError
from alstm.features.parser import ExpressionError

console = Console(stderr=True)


def features(
    data_dir: Path = typer.Argument(..., help="Qlib data directory."),
    factor_set: str | None = typer.Option(
        None, "--set", help="Factor set: alpha158 or alpha360 (omit to compute only --expr)."
    ),
    expr: list[str] = typer.Option(
        [], "--expr", help="Extra factor NAME=EXPRESSION (repeatable), e.g. MA5='Mean($close,5)'."
    ),
    label: bool = typer.Option(False, "--label", help="Add the label column LABEL0."),
    market: str = typer.Option("csi300", help="Market (instruments/<market>.txt); 'all' for all."),
    start: str = typer.Option(..., help="First day, YYYY-MM-DD."),
    end: str = typer.Option(..., help="Last day, YYYY-MM-DD."),
    out: Path = typer.Option(..., help="Output Parquet file (columns datetime, instrument, …)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Bypass the factor cache."),
    cache_dir: Path | None = typer.Option(None, help="Cache folder (default $ALSTM_CACHE_DIR)."),
) -> None:
    """Compute factors for a market and span and write them as one Parquet file."""
    from alstm.data.provider import QlibDataDir
    from alstm.features.cache import default_cache_dir
    from alstm.features.factors import LABEL, load_factors
    from alstm.features.factors import factor_set as get_set

    try:
        exprs = dict(get_set(factor_set)) if factor_set else {}
        for item in expr:
            name, sep, text = item.partition("=")
            if not sep or not name.strip() or not text.strip():
                raise typer.BadParameter(f"--expr {item!r}: expected NAME=EXPRESSION")
            exprs[name.strip()] = text.strip()
        if label:
            exprs.update(LABEL)
        if not exprs:
            raise typer.BadParameter("nothing to compute: give --set, --expr or --label")
        t0 = time.perf_counter()
        frame = load_factors(
            QlibDataDir(data_dir),
            exprs,
            start,
            end,
            None if market == "all" else market,
            cache_dir=None if no_cache else (cache_dir or default_cache_dir()),
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        frame.reset_index().to_parquet(tmp, index=False)
        os.replace(tmp, out)
    except (DataError, ExpressionError, ValueError) as err:
        if isinstance(err, typer.BadParameter):
            raise
        console.print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(2) from None
    console.print(
        f"{len(frame):,} rows × {frame.shape[1]} columns → {out} ({time.perf_counter() - t0:.1f}s)",
        highlight=False,
    )
