"""The ``alstm`` command line: thin wiring of the pipeline stages.

It sits above every package (``bench`` included), so it lives at the top of the tree.
"""

from __future__ import annotations

import typer

from alstm import __version__
from alstm.bench.cli_bench import bench
from alstm.bench.cli_study import study_app
from alstm.workflow.cli_data import data_app
from alstm.workflow.cli_evaluate import evaluate
from alstm.workflow.cli_features import features
from alstm.workflow.cli_report import report
from alstm.workflow.cli_run import config_app, run

app = typer.Typer(
    name="alstm",
    help="Qlib's ALSTM benchmark, fast and readable: data → factors → ALSTM → IC and backtest.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data_app, name="data")
app.command()(features)
app.command()(evaluate)
app.command()(run)
app.command()(report)
app.command()(bench)
app.add_typer(config_app, name="config")
app.add_typer(study_app, name="study")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"alstm {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """alstm command line."""
