"""``alstm bench``: every config × N seeds on a local process pool or Ray, then the table."""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as ProgressBar

console = Console(stderr=True)


class ExecutorName(str, Enum):
    """Where the runs execute."""

    local = "local"
    ray = "ray"


def bench(
    configs: list[Path] = typer.Argument(..., help="Run configs (YAML)."),
    seeds: int = typer.Option(..., "--seeds", min=1, help="Runs per config (one per seed)."),
    first_seed: int = typer.Option(1, help="Seeds are FIRST_SEED .. FIRST_SEED + SEEDS - 1."),
    executor: ExecutorName = typer.Option(ExecutorName.local, help="Process pool or Ray tasks."),
    address: str | None = typer.Option(
        None, help="Ray cluster address (default: start a local Ray instance)."
    ),
    workers: int | None = typer.Option(
        None, min=1, help="Runs at once (default: CPU cores // threads per worker)."
    ),
    threads_per_worker: int = typer.Option(1, min=1, help="Torch threads (CPUs) per run."),
    gpus_per_run: float = typer.Option(0.0, min=0.0, help="GPUs each Ray task declares."),
    retries: int = typer.Option(1, min=0, help="Further attempts for a run that fails."),
    out: Path = typer.Option(
        Path("benchmarks/results/bench"), help="Bench folder: runs/, table.md/.csv, bench.html."
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a setting of every config, e.g. --set model.kwargs.lr=5e-4."
    ),
    cache_dir: Path | None = typer.Option(None, help="Cache folder (default $ALSTM_CACHE_DIR)."),
) -> None:
    """Run every config with N seeds in parallel (finished runs are reused, interrupted ones
    resumed, failing ones retried), then write the mean ± std table beside Qlib's numbers."""
    from alstm.bench.executors import Executor, LocalExecutor, RayExecutor
    from alstm.bench.runner import RUNS, Progress, run_bench
    from alstm.bench.table import (
        bench_table,
        config_means,
        to_markdown,
        write_bench_html,
        write_tables,
    )
    from alstm.workflow.config import ConfigError, load_config

    try:
        loaded = [load_config(path, set_) for path in configs]
    except ConfigError as err:
        console.print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(2) from None
    pool: Executor
    if executor is ExecutorName.ray:
        pool = RayExecutor(threads_per_worker, gpus_per_run, address, workers=workers)
    else:
        pool = LocalExecutor(workers, threads_per_worker)
    seed_list = list(range(first_seed, first_seed + seeds))
    bar = ProgressBar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    task = bar.add_task("runs", total=len(loaded) * seeds)

    def show(p: Progress, message: str | None) -> None:
        if message:
            bar.console.print(message, highlight=False, markup=False, soft_wrap=True)
        bar.update(
            task,
            completed=p.reused + p.done + p.failed,
            description=f"runs: {p.done} done · {p.reused} reused · {p.running} running · "
            f"{p.failed} failed",
        )

    with pool, bar:
        result = run_bench(
            loaded,
            seed_list,
            out,
            pool,
            retries=retries,
            threads=threads_per_worker,
            cache_dir=cache_dir,
            on_progress=show,
        )
    key_dirs = [out / RUNS / key for key in result.keys]
    table = bench_table(key_dirs)
    md, csv = write_tables(table, out)
    page = write_bench_html(table, key_dirs, out)
    console.print(f"table: {md}, {csv}; page: {page}", highlight=False)
    for label, error in result.failures.items():
        console.print(
            f"[red]failed:[/red] {escape(label)}: {escape(error)}", highlight=False, soft_wrap=True
        )
    print(to_markdown(table))
    means = {
        key: {m: (v if math.isfinite(v) else None) for m, v in values.items()}
        for key, values in config_means(table).items()
    }
    print(json.dumps(means))
    if result.failures:
        raise typer.Exit(1)
