"""``alstm evaluate``: signal metrics and the TopkDropout backtest of a prediction file."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def evaluate(
    pred_file: Path = typer.Argument(..., help="Parquet with columns datetime, instrument, score."),
    data: Path = typer.Option(..., "--data", help="Qlib data directory."),
    market: str = typer.Option("csi300", help="Market whose members the label is computed for."),
    benchmark: str = typer.Option("SH000300", help="Benchmark instrument."),
    topk: int = typer.Option(50, help="Stocks held."),
    n_drop: int = typer.Option(5, "--n-drop", help="Stocks replaced each day."),
    deal_price: str = typer.Option("close", "--deal-price", help="close, open or vwap."),
    limit_threshold: float = typer.Option(0.095, "--limit-threshold"),
    open_cost: float = typer.Option(0.0005, "--open-cost"),
    close_cost: float = typer.Option(0.0015, "--close-cost"),
    min_cost: float = typer.Option(5.0, "--min-cost"),
    account: float = typer.Option(1e8, help="Starting cash."),
    start: str | None = typer.Option(None, help="First backtest day (default: first prediction)."),
    end: str | None = typer.Option(None, help="Last backtest day (default: last prediction)."),
    out: Path | None = typer.Option(None, help="Folder for report, positions, trades, metrics."),
) -> None:
    """Print IC, ICIR, Rank IC, Rank ICIR and the excess-return risk analysis (JSON, last line)."""
    import pandas as pd

    from alstm.data.errors import DataError
    from alstm.data.provider import QlibDataDir
    from alstm.evaluate import ExchangeRules, TopkDropout, backtest, signal_metrics
    from alstm.features.factors import LABEL, compute_factors

    try:
        frame = pd.read_parquet(pred_file)
        missing = {"datetime", "instrument", "score"} - set(frame.columns)
        if missing:
            raise ValueError(f"{pred_file}: missing column(s) {sorted(missing)}")
        pred = frame.set_index(["datetime", "instrument"])["score"].astype(float)
        dates = pred.index.get_level_values("datetime")
        start_d = pd.Timestamp(start) if start else dates.min()
        end_d = pd.Timestamp(end) if end else dates.max()
        qdata = QlibDataDir(data)
        label = compute_factors(qdata, LABEL, dates.min(), dates.max(), market)["LABEL0"]
        metrics: dict[str, object] = dict(signal_metrics(pred, label))
        result = backtest(
            pred,
            qdata,
            start_d,
            end_d,
            strategy=TopkDropout(topk=topk, n_drop=n_drop),
            rules=ExchangeRules(
                deal_price=deal_price,
                limit_threshold=limit_threshold,
                open_cost=open_cost,
                close_cost=close_cost,
                min_cost=min_cost,
            ),
            benchmark=benchmark,
            account=account,
        )
    except (DataError, ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(2) from None
    risk = result.risk()
    metrics.update({col: {k: float(v) for k, v in risk[col].items()} for col in risk.columns})
    _print_table(metrics)
    if out is not None:
        _write_outputs(out, result, metrics)
        console.print(f"wrote {out}/", highlight=False)
    print(json.dumps(metrics))


def _print_table(metrics: dict[str, object]) -> None:
    table = Table(title="signal and portfolio metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, dict):
            for k, v in value.items():
                table.add_row(f"{key}.{k}", f"{v:.6f}")
        else:
            table.add_row(key, f"{value:.6f}")
    console.print(table)


def _write_outputs(out: Path, result: object, metrics: dict[str, object]) -> None:
    """Write report/positions/trades Parquet files, then metrics.json last (atomic renames)."""
    from alstm.workflow.run_dir import RunDir

    folder = RunDir(out)
    folder.path.mkdir(parents=True, exist_ok=True)
    for name in ("report", "positions", "trades"):
        folder.write_parquet(f"{name}.parquet", getattr(result, name))
    folder.write_text("metrics.json", json.dumps(metrics, indent=1))
