"""``alstm report``: write the self-contained HTML report of a run directory."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

REPORT_ERROR_EXIT = 2  # missing or incomplete run directory


def report(
    run_dir: Path = typer.Argument(..., help="Run directory (holds metrics.json)."),
    out: Path | None = typer.Option(None, help="HTML file [default: RUN_DIR/report.html]."),
) -> None:
    """Render a run's figures and metrics into one HTML file that opens offline."""
    # Imported here so that `alstm --help` does not pay for matplotlib.
    from alstm.workflow.report import RunDirError, render_report

    try:
        path = render_report(run_dir, out)
    except RunDirError as err:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(err))}", soft_wrap=True)
        raise typer.Exit(REPORT_ERROR_EXIT) from None
    print(path)
