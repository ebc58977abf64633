"""Complexity study: what each size of ALSTM costs and what it buys.

A grid over ``hidden_size``, ``num_layers``, ``step_len`` and ``rnn_type`` (or any dotted config
path), each point trained for a few epochs in its own child process (multiprocessing *spawn*, so
nothing is inherited from this one), reporting parameters, multiply-adds per sample, seconds per
epoch, inference samples per second, peak memory and test IC, with the Pareto front of IC
against seconds per epoch.

Peak memory is the child's ``VmHWM`` (Linux's RSS high-water mark, ``/proc/self/status``) read
at its end. Not ``getrusage``: Linux carries the parent's peak RSS across ``fork``/``exec`` into
the child's ``ru_maxrss``, and ``RUSAGE_CHILDREN`` is the maximum over all children so far.
"""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from alstm.bench.study_common import (
    Step,
    derive,
    ensure_run,
    frame_table,
    log,
    paragraph,
    write_page,
)
from alstm.data.provider import QlibDataDir
from alstm.features.cache import default_cache_dir
from alstm.model import get_model
from alstm.workflow.config import RunConfig, load_config, safe_load
from alstm.workflow.pipeline import build_dataset, resolve_provider
from alstm.workflow.report import figure, new_figure, section

#: Short grid names → config paths (any other name must be a dotted config path).
GRID_PATHS = {
    "hidden_size": "model.kwargs.hidden_size",
    "num_layers": "model.kwargs.num_layers",
    "step_len": "dataset.step_len",
    "rnn_type": "model.kwargs.rnn_type",
}
#: 24 points. At 2 epochs on CSI300 Alpha158 (2 cores): the measured 49 s epoch at the
#: benchmark's size (64 hidden, 2 GRU layers, 20 steps; benchmarks/results/bench_train.txt, ts)
#: scaled per point by the measured time of a batch-800 training step and forward pass there,
#: ≈ 40 min of training, plus ≈ 30 s per point of data, prediction and backtest: ≈ 55 min.
DEFAULT_GRID: dict[str, list[Any]] = {
    "hidden_size": [32, 64, 128],
    "num_layers": [1, 2],
    "step_len": [10, 20],
    "rnn_type": ["GRU", "LSTM"],
}
GATES = {"GRU": 3, "LSTM": 4}
RESULT = "complexity.json"


def multiply_adds(
    d_feat: int,
    hidden_size: int,
    num_layers: int,
    step_len: int,
    rnn_type: str = "GRU",
    head: str = "both",
) -> int:
    """Multiply-adds of one sample's forward pass (matrix products and the attention pooling;
    biases, activations and elementwise gate arithmetic are not counted).

    With T steps, d features, h hidden, L layers and g gates (GRU 3, LSTM 4):
    input projection ``T·d·h``; recurrence ``T·L·g·h·(h + h)`` (each layer maps an h-vector
    input and the h-vector state to g·h gate pre-activations); attention net
    ``T·h·⌊h/2⌋ + T·⌊h/2⌋`` plus the pooling ``T·h``; head ``2h`` (``"both"``) or ``h``.

    >>> multiply_adds(2, 4, 1, 3)  # 24 + 288 + (24 + 6 + 12) + 8
    362
    """
    gates = GATES[str(rnn_type).upper()]
    t, h, half = step_len, hidden_size, hidden_size // 2
    total = t * d_feat * h + t * num_layers * gates * h * (h + h)
    if head != "last":
        total += t * h * half + t * half + t * h
    return total + (2 * h if head == "both" else h)


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["hidden_size=32,64", …]`` → ``{"hidden_size": [32, 64], …}`` (values read as YAML);
    no items gives :data:`DEFAULT_GRID`."""
    if not items:
        return {k: list(v) for k, v in DEFAULT_GRID.items()}
    grid = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not values:
            raise ValueError(f"--grid {item!r}: expected NAME=V1,V2,…")
        if name not in GRID_PATHS and "." not in name:
            raise ValueError(
                f"--grid {item!r}: unknown name {name!r}; use one of "
                f"{', '.join(GRID_PATHS)} or a dotted config path"
            )
        grid[name] = [safe_load(v) for v in values.split(",")]
    return grid


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first name varying slowest."""
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def point_name(point: Mapping[str, Any]) -> str:
    """A folder name for a grid point, e.g. ``hidden_size-64_rnn_type-GRU``."""
    return "_".join(f"{k}-{v}" for k, v in point.items())


def pareto_front(quality: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Bool mask of the points no other point beats: at least as good in quality and cost and
    better in one (NaN points are never on the front)."""
    ok = np.isfinite(quality) & np.isfinite(cost)
    front = ok.copy()
    for i in np.flatnonzero(ok):
        no_worse = ok & (quality >= quality[i]) & (cost <= cost[i])
        better = (quality > quality[i]) | (cost < cost[i])
        front[i] = not np.any(no_worse & better)
    return front


def measure_point(config: dict[str, Any], out: str, cache_dir: str | None) -> dict[str, Any]:
    """Train one grid point into ``out`` (a finished run is reused), time inference on the test
    segment and read this process's peak RSS; run it in a fresh child process."""
    cfg = RunConfig.model_validate(config)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    run = ensure_run(cfg, Path(out), cache)
    dataset = build_dataset(cfg, QlibDataDir(resolve_provider(cfg.data, cache)), cache)
    model = get_model(cfg.model.name).load(Path(out) / "model")
    start = time.perf_counter()
    n_test = len(model.predict(dataset, "test"))
    predict_seconds = time.perf_counter() - start
    p = model.get_params()
    shape = (p["d_feat"], p["hidden_size"], p["num_layers"], dataset.samples("test").step_len)
    return {
        "parameters": sum(int(w.numel()) for w in model.net_.parameters()),
        "multiply_adds": multiply_adds(*shape, p["rnn_type"], p["head"]),
        "seconds_per_epoch": run.fit_seconds / max(run.epochs_run, 1),
        "epochs": run.epochs_run,
        "inference_samples_per_s": n_test / predict_seconds,
        "peak_rss_mb": _peak_rss_mb(),
        **run.signal(),
    }


def _peak_rss_mb() -> float:
    """This process's RSS high-water mark in MB (NaN where ``/proc`` is absent)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return math.nan
    kib = next((int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmHWM:")), None)  # fmt: skip
    return kib / 1024 if kib is not None else math.nan


def run_grid(
    config: RunConfig,
    out: Path,
    grid: Mapping[str, Sequence[Any]],
    epochs: int = 2,
    cache_dir: Path | None = None,
    step: Step = log.info,
) -> pd.DataFrame:
    """Measure every grid point (``out/points/<name>``, each in a spawned child; finished points
    reused); one row per point. A script calling this needs an ``if __name__ == "__main__":``
    guard (a spawned child imports the main module)."""
    spawn = multiprocessing.get_context("spawn")
    rows = []
    points = grid_points(grid)
    for i, point in enumerate(points, 1):
        folder = out / "points" / point_name(point)
        result_file = folder / RESULT
        if not result_file.is_file():
            step(f"grid point {i}/{len(points)}: {point_name(point)}")
            changes = {GRID_PATHS.get(k, k): v for k, v in point.items()}
            cfg = derive(config, {**changes, "model.kwargs.n_epochs": epochs})
            args = (cfg.model_dump(mode="json"), str(folder / "run"),
                    None if cache_dir is None else str(cache_dir))  # fmt: skip
            with spawn.Pool(1) as pool:
                result = pool.apply(measure_point, args)
            result_file.write_text(json.dumps(result, indent=1))
        rows.append({**point, **json.loads(result_file.read_text())})
    table = pd.DataFrame(rows)
    table["pareto"] = pareto_front(table["IC"].to_numpy(), table["seconds_per_epoch"].to_numpy())
    return table


def study_complexity(
    config_path: Path,
    out: Path | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    epochs: int = 2,
    overrides: list[str] | None = None,
    cache_dir: Path | None = None,
    step: Step = log.info,
) -> Path:
    """Run the grid for a config and write ``complexity.html`` and ``complexity.csv`` into
    ``out``; returns the page's path."""
    config = load_config(config_path, overrides or [])
    out = Path(out) if out is not None else Path("runs") / f"{config.name}-complexity"
    grid = dict(grid) if grid is not None else dict(DEFAULT_GRID)
    table = run_grid(config, out, grid, epochs, cache_dir, step)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "complexity.csv", index=False)
    return write_page(
        out / "complexity.html",
        f"Complexity study: {config.name}",
        lambda: _body(table, list(grid), epochs),
        generator="alstm study complexity",
    )


def _body(table: pd.DataFrame, axes: list[str], epochs: int) -> list[str]:
    shown = table.assign(
        parameters=table["parameters"].map("{:,}".format),
        multiply_adds=table["multiply_adds"].map("{:,}".format),
        inference_samples_per_s=table["inference_samples_per_s"].map("{:,.0f}".format),
        peak_rss_mb=table["peak_rss_mb"].map("{:,.0f}".format),
        pareto=table["pareto"].map({True: "★", False: ""}),
    )
    return [
        section("grid", "Grid", [
            paragraph(
                f"Each point trained for {epochs} epoch(s) in its own process. Multiply-adds per "
                "sample count the forward pass's matrix products and the attention pooling "
                "(<span class='mono'>alstm.bench.study_complexity.multiply_adds</span>); seconds "
                "per epoch are the model's fit time divided by the epochs run (a training pass "
                "plus the train and valid evaluations); inference is one <span class='mono'>"
                "predict</span> over the test segment; peak memory is the child process's RSS "
                "high-water mark (VmHWM); IC and Rank IC are on the test segment. ★: on the "
                "Pareto front of IC against seconds per epoch."
            ),
            frame_table(shown),
            figure("pareto", _fig_pareto(table, axes), "Test IC against seconds per epoch"),
            figure("macs", _fig_macs(table), "Seconds per epoch against multiply-adds"),
        ]),
    ]  # fmt: skip


def _label(row: pd.Series, axes: list[str]) -> str:
    return "/".join(str(row[a]) for a in axes)


def _fig_pareto(table: pd.DataFrame, axes: list[str]) -> Figure:
    fig, ax = new_figure()
    ax.scatter(table["seconds_per_epoch"], table["IC"], color="C0", s=18, label="grid point")
    front = table[table["pareto"]].sort_values("seconds_per_epoch")
    ax.plot(front["seconds_per_epoch"], front["IC"], color="C3", marker="*", markersize=9,
            label="Pareto front")  # fmt: skip
    for _, row in table.iterrows():
        ax.annotate(_label(row, axes), (row["seconds_per_epoch"], row["IC"]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
    ax.set_xlabel("seconds per epoch")
    ax.set_ylabel("test IC")
    ax.set_title(f"IC vs training cost (labels: {'/'.join(axes)})")
    ax.legend(loc="best")
    return fig


def _fig_macs(table: pd.DataFrame) -> Figure:
    fig, ax = new_figure()
    ax.scatter(table["multiply_adds"], table["seconds_per_epoch"], color="C2", s=18)
    ax.set_xscale("log")
    ax.set_xlabel("multiply-adds per sample")
    ax.set_ylabel("seconds per epoch")
    ax.set_title("Measured cost against the analytic count")
    return fig
