"""Early-stopping study: which validation metric, patience and learning rate spend the training
time well.

Each setting changes ``model.kwargs`` (or any dotted config path) and is trained under the same
seeds; the page compares test IC and Rank IC with the best epoch, the epochs actually run and the
seconds spent fitting.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from alstm.bench.study_common import (
    SIGNAL,
    Step,
    derive,
    ensure_run,
    frame_table,
    log,
    mean_std_table,
    paragraph,
    seeds_for,
    summarize,
    write_page,
)
from alstm.workflow.config import RunConfig, load_config, safe_load
from alstm.workflow.report import figure, new_figure, section

#: Qlib's setting first, then the alternatives: the IC as stopping metric, shorter patience,
#: a smaller and a larger learning rate.
DEFAULT_SETTINGS = (
    "metric=loss,early_stop=10",
    "metric=ic,early_stop=10",
    "metric=loss,early_stop=3",
    "metric=ic,early_stop=3",
    "metric=ic,early_stop=3,lr=5e-4",
    "metric=ic,early_stop=3,lr=2e-3",
)
COLUMNS = [*SIGNAL, "best_epoch", "epochs_run", "fit_seconds"]
QLIB_NOTE = (
    "In Qlib's own Alpha158 run on the shared data (seed 1), the validation loss was best after "
    "epoch 1 and ten more epochs were spent before early stopping ended training."
)


def parse_setting(text: str) -> dict[str, Any]:
    """``"metric=ic,early_stop=3"`` → ``{"model.kwargs.metric": "ic", …}`` (values read as
    YAML; a dotted name is a config path, any other a ``model.kwargs`` key)."""
    changes = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"setting {text!r}: expected KEY=VALUE[,KEY=VALUE…]")
        key = key.strip()
        changes[key if "." in key else f"model.kwargs.{key}"] = safe_load(value)
    return changes


def run_settings(
    config: RunConfig,
    out: Path,
    settings: Sequence[str],
    seeds: list[int],
    cache_dir: Path | None = None,
    step: Step = log.info,
) -> pd.DataFrame:
    """Train every setting under each seed into ``out/<setting>/seed<k>`` (finished runs
    reused); one row per run."""
    rows = []
    for setting in settings:
        changes = parse_setting(setting)
        folder = setting.replace("=", "-").replace(",", "_")
        for seed in seeds:
            run = ensure_run(derive(config, {**changes, "seed": seed}),
                             out / folder / f"seed{seed}", cache_dir, step)  # fmt: skip
            rows.append({
                "setting": setting, "seed": seed, **run.signal(), "best_epoch": run.best_epoch,
                "epochs_run": run.epochs_run, "fit_seconds": run.fit_seconds,
            })  # fmt: skip
    return pd.DataFrame(rows)


def study_early_stopping(
    config_path: Path,
    out: Path | None = None,
    settings: Sequence[str] = DEFAULT_SETTINGS,
    n_seeds: int = 3,
    overrides: list[str] | None = None,
    cache_dir: Path | None = None,
    step: Step = log.info,
) -> Path:
    """Run the settings for a config and write ``early_stopping.html``, ``early_stopping.csv``
    (per setting, mean and std) and ``early_stopping_runs.csv`` into ``out``; returns the page."""
    config = load_config(config_path, overrides or [])
    out = Path(out) if out is not None else Path("runs") / f"{config.name}-early-stopping"
    runs = run_settings(config, out, settings, seeds_for(config, n_seeds), cache_dir, step)
    summary = summarize(runs, "setting", COLUMNS)
    out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out / "early_stopping_runs.csv", index=False)
    summary.to_csv(out / "early_stopping.csv", index=False)
    return write_page(
        out / "early_stopping.html",
        f"Early-stopping study: {config.name}",
        lambda: _body(runs, summary),
        generator="alstm study early-stopping",
    )


def _body(runs: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    return [
        section("settings", "Stopping metric, patience and learning rate", [
            paragraph(QLIB_NOTE),
            paragraph(
                "Each setting changes only the named model settings of the config; every "
                "setting runs under the same seeds. Test-segment metrics; best epoch is "
                "0-based; seconds are the model's fit time; mean ± std over seeds."
            ),
            mean_std_table(summary, "setting", COLUMNS, digits=3),
            "<details><summary>every run</summary>" + frame_table(runs) + "</details>",
            figure("ic-vs-seconds", _fig_ic_seconds(runs), "Test IC against seconds spent"),
        ]),
    ]  # fmt: skip


def _fig_ic_seconds(runs: pd.DataFrame) -> Figure:
    fig, ax = new_figure()
    for i, (setting, group) in enumerate(runs.groupby("setting", sort=False)):
        ax.scatter(group["fit_seconds"], group["IC"], color=f"C{i % 10}", s=20, label=setting)
    ax.set_xlabel("fit seconds")
    ax.set_ylabel("test IC")
    ax.set_title("Test IC against training time (one point per run)")
    ax.legend(loc="best")
    return fig
