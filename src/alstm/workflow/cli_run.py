"""``alstm run`` and ``alstm config from-qlib``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

console = Console(stderr=True)
config_app = typer.Typer(help="Work with run configs.", no_args_is_help=True)


def run(
    config: Path = typer.Argument(..., help="Run config (YAML)."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a setting, e.g. --set model.kwargs.lr=5e-4 (repeatable)."
    ),
    out: Path | None = typer.Option(None, help="Run folder (default runs/<config name>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a finished run in --out."),
    cache_dir: Path | None = typer.Option(None, help="Cache folder (default $ALSTM_CACHE_DIR)."),
) -> None:
    """Run a config end to end: factors → processors → ALSTM → signal and portfolio analysis."""
    from alstm.data.errors import DataError
    from alstm.workflow.config import ConfigError, load_config
    from alstm.workflow.pipeline import run as run_pipeline
    from alstm.workflow.run_dir import RunError

    logging.basicConfig(level=logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])  # fmt: skip
    try:
        cfg = load_config(config, set_)
        folder = out or Path("runs") / cfg.name
        metrics = run_pipeline(cfg, folder, resume=resume, overwrite=overwrite,
                               cache_dir=cache_dir, step=console.log)  # fmt: skip
    except (ConfigError, RunError, DataError) as err:
        console.print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(2) from None
    table = Table(title=f"{cfg.name}: test metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        for k, v in value.items() if isinstance(value, dict) else [("", value)]:
            table.add_row(
                f"{key}.{k}" if k else key, f"{v:.6f}" if isinstance(v, float) else str(v)
            )
    console.print(table)
    report = folder / "report.html"
    if report.exists():
        console.print(f"report: {report.resolve()}", highlight=False)
    print(json.dumps(metrics))


@config_app.command("from-qlib")
def from_qlib(
    qlib_yaml: Path = typer.Argument(..., help="A Qlib workflow YAML (qrun format)."),
    provider: str | None = typer.Option(None, help="Data directory to put in data.provider."),
    out: Path | None = typer.Option(None, help="Write here instead of standard output."),
) -> None:
    """Translate a Qlib benchmark YAML into an alstm config."""
    from alstm.workflow.config import ConfigError, parse_config
    from alstm.workflow.qlib_yaml import convert_file

    try:
        text = convert_file(qlib_yaml, provider)
        parse_config(text, str(qlib_yaml))
    except (ConfigError, OSError, KeyError) as err:
        console.print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(2) from None
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        console.print(f"wrote {out}", highlight=False)
