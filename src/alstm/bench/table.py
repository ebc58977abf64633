"""The bench table: per config, mean ± sample std over seeds of the benchmark's seven numbers,
an ensemble row (the seeds' standardized predictions averaged into one signal), and Qlib's
published ALSTM rows beside them; written as Markdown, CSV and an HTML page.

A config's runs are the ``seed<k>/`` folders of its key folder (``<out>/runs/<name>-<hash8>/``)
that hold ``metrics.json``; every finished seed counts, so seeds accumulate across benches. The
ensemble row reads each run's ``pred.parquet`` and, from one run, ``label.parquet``,
``config.yaml`` and ``meta.json`` (the data directory to backtest on).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from alstm.data.provider import QlibDataDir
from alstm.evaluate import signal_metrics
from alstm.workflow.config import load_config
from alstm.workflow.pipeline import portfolio_backtest, read_pred
from alstm.workflow.report import STYLE, figure, html_document, new_figure, section, write_html

#: The table's numbers: signal metrics, then the excess return *with cost* (as Qlib's README).
METRICS = (
    "IC",
    "ICIR",
    "Rank IC",
    "Rank ICIR",
    "annualized_return",
    "information_ratio",
    "max_drawdown",
)
HEADERS = ("IC", "ICIR", "Rank IC", "Rank ICIR", "Ann. return", "IR", "Max DD")
RISK = "excess_return_with_cost"
SEED_DIR = re.compile(r"seed(-?\d+)")

#: Qlib's published ALSTM rows, mean ± std over 20 seeds on CSI300 (Qlib's
#: examples/benchmarks/README.md, quoted in ../shared/SPEC.md §11; Alpha158 with 20 features).
QLIB_ALSTM: dict[str, tuple[tuple[float, float], ...]] = {
    "Alpha158": ((0.0362, 0.01), (0.2789, 0.06), (0.0463, 0.01), (0.3661, 0.05),
                 (0.0470, 0.03), (0.6992, 0.47), (-0.1072, 0.03)),
    "Alpha360": ((0.0497, 0.00), (0.3829, 0.04), (0.0599, 0.00), (0.4736, 0.03),
                 (0.0626, 0.02), (0.8651, 0.31), (-0.0994, 0.03)),
}  # fmt: skip
QLIB_SEEDS = 20
QLIB_PERIOD = "2017-01-01 .. 2020-08-01"


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The table's seven numbers from a ``metrics.json`` mapping (NaN where absent)."""
    risk = metrics.get(RISK) or {}
    return {m: float(metrics.get(m, risk.get(m, math.nan))) for m in METRICS}


def finished_runs(key_dir: Path) -> dict[int, Path]:
    """The finished runs of a config folder: seed → run folder, by seed."""
    runs = {}
    for path in Path(key_dir).glob("seed*"):
        match = SEED_DIR.fullmatch(path.name)
        if match and (path / "metrics.json").is_file():
            runs[int(match.group(1))] = path
    return dict(sorted(runs.items()))


def seed_metrics(key_dir: Path) -> pd.DataFrame:
    """One row per finished seed (index ``seed``), one column per entry of :data:`METRICS`."""
    rows = {
        seed: flat_metrics(json.loads((path / "metrics.json").read_text()))
        for seed, path in finished_runs(key_dir).items()
    }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(METRICS))
    frame.index.name = "seed"
    return frame


def zscore_by_date(pred: pd.Series) -> pd.Series:
    """``(score − mean) / std`` within each date (std with ddof=1), float64."""
    score = pred.astype("float64")
    by_date = score.groupby(level="datetime")
    return (score - by_date.transform("mean")) / by_date.transform("std")


def ensemble_pred(preds: Sequence[pd.Series]) -> pd.Series:
    """Mean of the per-date z-scored predictions (NaN-skipping), indexed (datetime, instrument)."""
    stacked = pd.concat([zscore_by_date(p) for p in preds], axis=1)
    return stacked.mean(axis=1).sort_index().rename("score")


def ensemble_metrics(run_dirs: Sequence[Path]) -> dict[str, float]:
    """The seven numbers of :func:`ensemble_pred` over ``run_dirs``, evaluated as the runs'
    config specifies (signal analysis and backtest; NaN for what it leaves out)."""
    first = Path(run_dirs[0])
    config = load_config(first / "config.yaml")
    pred = ensemble_pred([read_pred(d) for d in run_dirs])
    metrics: dict[str, Any] = {}
    sig = config.records.signal_analysis
    if sig is not None:
        label = pd.read_parquet(first / "label.parquet")
        label = label.set_index(["datetime", "instrument"])["label"]
        metrics.update(
            signal_metrics(pred, label, long_short=sig.ana_long_short, ann_scaler=sig.ann_scaler)
        )
    if config.records.portfolio_analysis is not None:
        data = QlibDataDir(json.loads((first / "meta.json").read_text())["data_dir"])
        metrics[RISK] = portfolio_backtest(pred, config, data).risk()[RISK].to_dict()
    return flat_metrics(metrics)


def bench_table(key_dirs: Sequence[Path]) -> pd.DataFrame:
    """Per config folder a seeds row (mean and sample std) and an ensemble row, then Qlib's
    published rows; columns ``row kind config seeds``, each metric and ``<metric> std``,
    ``data fingerprint`` and ``test period``."""
    rows = []
    for key_dir in map(Path, key_dirs):
        runs = finished_runs(key_dir)
        if not runs:
            continue
        per_seed = seed_metrics(key_dir)
        first = next(iter(runs.values()))
        config = load_config(first / "config.yaml")
        test = config.dataset.segments["test"]
        prints = {
            json.loads((d / "meta.json").read_text())["data_fingerprint"] for d in runs.values()
        }
        common = {
            "config": key_dir.name,
            "seeds": len(runs),
            "data fingerprint": ", ".join(sorted(prints)),
            "test period": f"{test[0]} .. {test[1]}",
        }
        rows.append(
            {
                "row": f"{key_dir.name} (mean ± std)",
                "kind": "seeds",
                **common,
                **per_seed.mean().to_dict(),
                **{f"{m} std": v for m, v in per_seed.std(ddof=1).to_dict().items()},
            }
        )
        rows.append(
            {
                "row": f"{key_dir.name} ensemble",
                "kind": "ensemble",
                **common,
                **ensemble_metrics(list(runs.values())),
            }
        )
    for name, values in QLIB_ALSTM.items():
        rows.append(
            {
                "row": f"Qlib ALSTM {name} (published)",
                "kind": "qlib",
                "config": "",
                "seeds": QLIB_SEEDS,
                "data fingerprint": "Qlib cn_data",
                "test period": QLIB_PERIOD,
                **{m: mean for m, (mean, _) in zip(METRICS, values, strict=True)},
                **{f"{m} std": std for m, (_, std) in zip(METRICS, values, strict=True)},
            }
        )
    columns = ["row", "kind", "config", "seeds"]
    columns += [c for m in METRICS for c in (m, f"{m} std")]
    columns += ["data fingerprint", "test period"]
    return pd.DataFrame(rows).reindex(columns=columns)


def cell(mean: float, std: float | None = None, std_digits: int = 4) -> str:
    """``0.0362 ± 0.0100``; the mean alone without a finite std, ``–`` without a mean.

    >>> cell(0.0362, 0.01), cell(0.0362, 0.01, std_digits=2), cell(-0.1, math.nan), cell(math.nan)
    ('0.0362 ± 0.0100', '0.0362 ± 0.01', '-0.1000', '–')
    """
    if mean is None or not math.isfinite(mean):
        return "–"
    if std is None or not math.isfinite(std):
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {std:.{std_digits}f}"


def display_rows(table: pd.DataFrame) -> list[list[str]]:
    """The table as text cells: header row first, metric columns as ``mean ± std`` (Qlib's
    standard deviations with the two decimals it publishes)."""
    header = ["config", "seeds", *HEADERS, "data fingerprint", "test period"]
    body = [
        [
            str(r["row"]),
            str(r["seeds"]),
            *(
                cell(r[m], r[f"{m} std"], std_digits=2 if r["kind"] == "qlib" else 4)
                for m in METRICS
            ),
            str(r["data fingerprint"]),
            str(r["test period"]),
        ]
        for r in table.to_dict("records")
    ]
    return [header, *body]


def to_markdown(table: pd.DataFrame) -> str:
    """A Markdown (GitHub) table of :func:`display_rows`."""
    header, *body = display_rows(table)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def config_means(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per config: the mean of each metric over its seeds and the number of seeds."""
    seeds = table[table["kind"] == "seeds"]
    return {
        r["config"]: {"seeds": int(r["seeds"]), **{m: float(r[m]) for m in METRICS}}
        for r in seeds.to_dict("records")
    }


def write_tables(table: pd.DataFrame, out: Path) -> tuple[Path, Path]:
    """Write ``table.md`` and ``table.csv`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    md, csv = out / "table.md", out / "table.csv"
    md.write_text(to_markdown(table))
    # repr-exact floats: the CSV is what gets compared between benches
    table.to_csv(csv, index=False, float_format="%.17g")
    return md, csv


def write_bench_html(table: pd.DataFrame, key_dirs: Sequence[Path], out: Path) -> Path:
    """Write ``bench.html`` into ``out``: the table and a per-seed IC bar chart per config."""
    header, *body = display_rows(table)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body
    )
    ensembles = table[table["kind"] == "ensemble"].set_index("config")["IC"]
    figures = []
    with matplotlib.rc_context(STYLE):
        for i, key_dir in enumerate(map(Path, key_dirs)):
            if not finished_runs(key_dir):
                continue
            name = key_dir.name
            fig = _fig_seed_ic(name, seed_metrics(key_dir)["IC"], ensembles.get(name, math.nan))
            figures.append(figure(f"ic-{i}", fig, f"IC per seed: {html.escape(name)}"))
    grid = f"<table class='num'><tr>{head}</tr>{rows}</table>"
    body_parts = [
        "<header><h1>alstm bench</h1></header>",
        section("table", "Test metrics (excess return with cost)", [grid]),
        section("seeds", "IC per seed", figures),
    ]
    page = html_document("alstm bench", body_parts, generator="alstm bench")
    return write_html(out / "bench.html", page)


def _fig_seed_ic(name: str, ic: pd.Series, ensemble_ic: float) -> Figure:
    fig, ax = new_figure()
    ax.bar([str(s) for s in ic.index], ic.to_numpy(), color="C0", width=0.7)
    ax.axhline(0, color="#888", linewidth=0.8)
    ax.axhline(float(np.mean(ic)), color="#333", linewidth=1.0, label=f"mean {np.mean(ic):.4f}")
    if math.isfinite(ensemble_ic):
        ax.axhline(
            ensemble_ic,
            color="C3",
            linestyle="--",
            linewidth=1.1,
            label=f"ensemble {ensemble_ic:.4f}",
        )
    ax.set_xlabel("seed")
    ax.set_ylabel("IC")
    ax.grid(axis="x", visible=False)
    ax.set_title(f"{name}: IC per seed")
    ax.legend(loc="best")
    return fig
