"""``alstm study attention | complexity | early-stopping``: one HTML page per study."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)
study_app = typer.Typer(
    help="Studies of the model: attention, complexity, early stopping (one HTML page each).",
    no_args_is_help=True,
)
STUDY_ERROR_EXIT = 2
SET_HELP = "Override a config setting, e.g. --set data.provider=../shared/data/cn_csi300."
CACHE_HELP = "Cache folder (default $ALSTM_CACHE_DIR)."


def _run(study: Callable[[], Path]) -> None:
    """Run ``study``; print the page's path, or one red line and exit 2 on a known error."""
    from alstm.data.errors import DataError
    from alstm.workflow.config import ConfigError
    from alstm.workflow.run_dir import RunError

    try:
        page = study()
    except (ConfigError, RunError, DataError, ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/] {escape(str(err))}", soft_wrap=True)
        raise typer.Exit(STUDY_ERROR_EXIT) from None
    print(page)


@study_app.command()
def attention(
    source: Path = typer.Argument(..., help="A finished run folder, or a config to train."),
    seeds: int = typer.Option(3, help="Seeds per ablation variant (with a config)."),
    out: Path | None = typer.Option(
        None, help="Output folder (default: the run folder, or runs/<name>-attention)."
    ),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    cache_dir: Path | None = typer.Option(None, help=CACHE_HELP),
) -> None:
    """Attention by lag, its entropy, high- vs low-volatility days; with a config also the
    ablation (full head vs last step only vs attention-pooled only) under the same seeds."""
    from alstm.bench.study_attention import study_attention

    _run(lambda: study_attention(source, out, seeds, set_, cache_dir, console.log))


@study_app.command()
def complexity(
    config: Path = typer.Argument(..., help="Run config (YAML)."),
    grid: list[str] = typer.Option(
        [],
        "--grid",
        help="An axis NAME=V1,V2 (repeatable; hidden_size, num_layers, step_len, rnn_type or a "
        "dotted config path). Default: hidden_size=32,64,128 × num_layers=1,2 × step_len=10,20 "
        "× rnn_type=GRU,LSTM (24 points), about 55 min at 2 epochs for CSI300 Alpha158 on 2 "
        "cores (estimated from a measured 50 s epoch at 64/2/20/GRU and per-point batch "
        "timings).",
    ),
    epochs: int = typer.Option(2, help="Epochs per grid point."),
    out: Path | None = typer.Option(None, help="Output folder (default runs/<name>-complexity)."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    cache_dir: Path | None = typer.Option(None, help=CACHE_HELP),
) -> None:
    """Parameters, multiply-adds, seconds per epoch, inference speed, peak memory and IC over a
    grid of model sizes, with the Pareto front of IC against training time."""
    from alstm.bench.study_complexity import parse_grid, study_complexity

    _run(lambda: study_complexity(config, out, parse_grid(grid), epochs, set_, cache_dir,
                                  console.log))  # fmt: skip


@study_app.command("early-stopping")
def early_stopping(
    config: Path = typer.Argument(..., help="Run config (YAML)."),
    seeds: int = typer.Option(3, help="Seeds per setting."),
    setting: list[str] = typer.Option(
        [],
        "--setting",
        help="A setting KEY=VALUE[,KEY=VALUE] of model.kwargs (repeatable), e.g. "
        "metric=ic,early_stop=3,lr=5e-4. Default: loss and ic with patience 10 and 3, and ic "
        "with patience 3 at lr 5e-4 and 2e-3.",
    ),
    out: Path | None = typer.Option(
        None, help="Output folder (default runs/<name>-early-stopping)."
    ),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    cache_dir: Path | None = typer.Option(None, help=CACHE_HELP),
) -> None:
    """Compare stopping on the valid loss with stopping on the valid IC, and a few patience and
    learning-rate settings, on test IC and the training time spent."""
    from alstm.bench.study_early_stop import DEFAULT_SETTINGS, study_early_stopping

    _run(lambda: study_early_stopping(config, out, setting or DEFAULT_SETTINGS, seeds, set_,
                                      cache_dir, console.log))  # fmt: skip
