"""The HTML report of a run directory: one self-contained file (inline CSS, PNG figures embedded
as base64), readable offline.

The report only composes :mod:`alstm.evaluate.signal` and plain pandas over the run's files; each
figure has its own small function returning a matplotlib ``Figure`` (Agg canvas, no pyplot, so no
global backend state). A section whose inputs are absent is replaced by a short note.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from alstm.evaluate.signal import daily_ic, daily_rank_ic, ic_by_month, quantile_returns

REPORT_NAME = "report.html"
DPI = 90
WIDE = (6.4, 3.2)  # inches; two figures side by side on a 1200 px page
STYLE = {
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "figure.facecolor": "white",
}
HEADER_KEYS = ("seconds",)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class RunDirError(FileNotFoundError):
    """A run directory that is missing or incomplete (no readable ``metrics.json``)."""


@dataclass(frozen=True)
class Run:
    """The files of a run directory that the report reads; ``None`` where a file is absent."""

    path: Path
    metrics: dict[str, Any]
    meta: dict[str, Any]
    config: dict[str, Any] | None
    config_text: str | None
    pred: pd.Series | None
    label: pd.Series | None
    report: pd.DataFrame | None
    evals: dict[str, Any] | None
    attention: np.ndarray | None


def render_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the run's HTML report to ``out`` (default ``run_dir/report.html``); return its path.

    Raises :class:`RunDirError` when ``run_dir`` has no readable ``metrics.json``.
    """
    run = load_run(Path(run_dir))
    out = Path(out) if out is not None else run.path / REPORT_NAME
    with matplotlib.rc_context(STYLE):
        page = _page(run)
    return write_html(out, page)


def load_run(run_dir: Path) -> Run:
    """Read the report's inputs from ``run_dir``; optional files that are absent become ``None``."""
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a directory")
    metrics = _read_json(run_dir / "metrics.json")
    if metrics is None:
        raise RunDirError(f"{run_dir}: incomplete run (no metrics.json)")
    config_path = run_dir / "config.yaml"
    config_text = config_path.read_text(encoding="utf-8") if config_path.is_file() else None
    return Run(
        path=run_dir,
        metrics=metrics,
        meta=_read_json(run_dir / "meta.json") or {},
        config=_parse_yaml(config_text),
        config_text=config_text,
        pred=_read_series(run_dir / "pred.parquet", "score"),
        label=_read_series(run_dir / "label.parquet", "label"),
        report=_read_report(run_dir / "report_normal.parquet"),
        evals=_read_json(run_dir / "evals.json"),
        attention=_read_attention(run_dir / "attention.npz"),
    )


def drawdown(returns: pd.Series) -> pd.Series:
    """Drawdown of the cumulative *sum* of ``returns``: ``cumsum − cummax(cumsum)`` (≤ 0).

    Its minimum is :func:`alstm.evaluate.risk.risk_analysis`'s ``max_drawdown`` (Qlib's sum mode).

    >>> drawdown(pd.Series([0.01, -0.02, 0.03])).round(4).tolist()
    [0.0, -0.02, 0.0]
    """
    cum = returns.astype("float64").cumsum()
    return cum - cum.cummax()


def attention_entropy(weights: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of ``weights`` [n, T]; ``log(T)`` for uniform rows.

    >>> attention_entropy(np.array([[0.5, 0.5], [1.0, 0.0]])).round(4).tolist()
    [0.6931, 0.0]
    """
    w = np.asarray(weights, dtype=np.float32)
    # Clamping inside the log makes 0·log 0 = 0 without a masked pass over the array.
    terms = w * np.log(np.maximum(w, np.finfo(np.float32).tiny))
    return (-terms).sum(axis=1, dtype=np.float64)  # negate first: no -0.0 for one-hot rows


# --- reading -------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RunDirError(f"{path}: invalid JSON ({e})") from None


def _parse_yaml(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    import yaml  # only needed when the run has a config

    loaded = yaml.safe_load(text)
    return loaded if isinstance(loaded, dict) else None


def _read_series(path: Path, column: str) -> pd.Series | None:
    """A ``(datetime, instrument)``-indexed float series from a Parquet file, or ``None``."""
    if not path.is_file():
        return None
    frame = pd.read_parquet(path, columns=["datetime", "instrument", column])
    frame["datetime"] = pd.to_datetime(frame["datetime"])
    return frame.set_index(["datetime", "instrument"])[column].astype("float64").sort_index()


def _read_report(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    report = pd.read_parquet(path)
    if "datetime" in report.columns:
        report = report.set_index("datetime")
    report.index = pd.to_datetime(report.index)
    return report.sort_index()


def _read_attention(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    with np.load(path) as npz:
        return np.asarray(npz["weights"], dtype=np.float32)


# --- page ----------------------------------------------------------------------------------------


def _page(run: Run) -> str:
    name = html.escape(run.path.resolve().name)
    body = [
        f"<header><h1>alstm run <span class='mono'>{name}</span></h1>{_header_table(run)}",
        f"{_config_details(run)}</header>",
        section("metrics", "Metrics", [_metrics_tables(run.metrics)]),
        section("signal", "Signal", _signal_parts(run)),
        section("portfolio", "Portfolio (backtest)", _portfolio_parts(run)),
        section("training", "Training", _training_parts(run)),
        section("attention", "Attention", _attention_parts(run)),
    ]
    return html_document(f"alstm report: {name}", body, generator="alstm report")


def html_document(title: str, body: list[str], generator: str) -> str:
    """A self-contained HTML page (inline CSS) around ``body``'s header/section snippets."""
    created = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(body)
        + f"<footer>Generated by <span class='mono'>{generator}</span> on {created}.</footer>"
        + "</body></html>\n"
    )


def write_html(out: Path, page: str) -> Path:
    """Write ``page`` to ``out`` atomically (readers never see a half-written file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out


def section(key: str, title: str, parts: list[str]) -> str:
    """A titled ``<section>``: text and tables first, then the figures in a grid."""
    figures = [p for p in parts if p.startswith("<figure")]
    others = [p for p in parts if not p.startswith("<figure")]
    grid = f"<div class='grid'>{''.join(figures)}</div>" if figures else ""
    return f"<section id='{key}'><h2>{title}</h2>{''.join(others)}{grid}</section>"


def figure(key: str, fig: Figure, caption: str) -> str:
    """``fig`` as an inline PNG ``<figure>`` with ``caption``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f"<figure id='fig-{key}'><img alt='{html.escape(caption)}' "
        f"src='data:image/png;base64,{data}'><figcaption>{caption}</figcaption></figure>"
    )


def skip_note(text: str) -> str:
    """A short note standing in for a section whose inputs are absent."""
    return f"<p class='skip'>{text}</p>"


def _header_table(run: Run) -> str:
    cfg = run.config or {}
    rows = {
        "created": run.meta.get("created"),
        "run time (s)": run.metrics.get("seconds"),
        "alstm version": run.meta.get("alstm_version"),
        "git commit": run.meta.get("git_commit"),
        "data fingerprint": run.meta.get("data_fingerprint"),
        "config name": cfg.get("name"),
        "seed": cfg.get("seed"),
        "model": _get(cfg, "model", "name"),
        "dataset": _get(cfg, "dataset", "name"),
        "factors": _get(cfg, "handler", "factors"),
        "market / benchmark": _join(_get(cfg, "data", "market"), _get(cfg, "data", "benchmark")),
        "test segment": _join(*(_get(cfg, "dataset", "segments", "test") or [])),
    }
    cells = "".join(
        f"<tr><th>{k}</th><td class='mono'>{html.escape(str(v))}</td></tr>"
        for k, v in rows.items()
        if v not in (None, "")
    )
    return f"<table class='meta'>{cells}</table>"


def _config_details(run: Run) -> str:
    if run.config_text is None:
        return skip_note("No config.yaml in the run directory.")
    text = html.escape(run.config_text)
    return f"<details><summary>config.yaml</summary><pre>{text}</pre></details>"


def _get(tree: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def _join(*values: Any) -> str | None:
    present = [str(v) for v in values if v is not None]
    return " / ".join(present) if present else None


def _metrics_tables(metrics: dict[str, Any]) -> str:
    """Scalar metrics as one table; nested portfolio metrics as rows × (without, with cost)."""
    # "seconds" (the run's wall time) is shown in the header, not among the metrics.
    scalars = {
        k: v for k, v in metrics.items() if isinstance(v, int | float) and k not in HEADER_KEYS
    }
    nested = {k: v for k, v in metrics.items() if isinstance(v, dict)}
    head = "".join(f"<th>{html.escape(k)}</th>" for k in scalars)
    vals = "".join(f"<td>{_fmt(v)}</td>" for v in scalars.values())
    parts = [f"<table class='num'><tr>{head}</tr><tr>{vals}</tr></table>"] if scalars else []
    if nested:
        keys = list(dict.fromkeys(k for d in nested.values() for k in d))
        cols = "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in nested)
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th>"
            + "".join(f"<td>{_fmt(d.get(k))}</td>" for d in nested.values())
            + "</tr>"
            for k in keys
        )
        parts.append(f"<table class='num'><tr><th></th>{cols}</tr>{rows}</table>")
    else:
        parts.append(skip_note("No portfolio metrics (the run had no backtest)."))
    return "".join(parts)


def _fmt(value: Any) -> str:
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value:.6f}"  # as Qlib's and `alstm evaluate`'s tables
    return html.escape(str(value))


# --- sections ------------------------------------------------------------------------------------


def _signal_parts(run: Run) -> list[str]:
    if run.pred is None or run.label is None:
        missing = [n for n, v in (("pred", run.pred), ("label", run.label)) if v is None]
        files = " and ".join(f"{n}.parquet" for n in missing)
        return [skip_note(f"No {files} in the run directory: signal figures skipped.")]
    ic, ric = daily_ic(run.pred, run.label), daily_rank_ic(run.pred, run.label)
    return [
        figure("cum-ic", _fig_cum_ic(ic, ric), "Cumulative daily IC and Rank IC"),
        figure("monthly-ic", _fig_monthly_ic(ic_by_month(ic)), "Mean IC per month"),
        figure(
            "quantile",
            _fig_quantile(quantile_returns(run.pred, run.label)),
            "Cumulative mean label of five score groups (Group1 = highest scores)",
        ),
    ]


def _portfolio_parts(run: Run) -> list[str]:
    report = run.report
    if report is None:
        return [skip_note("No report_normal.parquet (the run had no backtest): figures skipped.")]
    if report.empty:
        return [skip_note("report_normal.parquet has no rows: portfolio figures skipped.")]
    excess = report["return"] - report["bench"]
    excess_cost = excess - report["cost"]
    return [
        figure(
            "excess-return",
            _fig_excess(excess, excess_cost, report["bench"]),
            "Cumulative (summed) excess return over the benchmark",
        ),
        figure(
            "drawdown",
            _fig_drawdown(drawdown(excess_cost)),
            "Drawdown of the cumulative excess return with cost",
        ),
        figure("turnover", _fig_turnover(report["turnover"]), "Daily turnover"),
    ]


def _training_parts(run: Run) -> list[str]:
    evals = run.evals
    if not evals or not any(evals.get(key) for key in ("train", "valid", "train_loss")):
        return [skip_note("No evals.json in the run directory: training curves skipped.")]
    return [figure("training", _fig_training(evals), "Train and valid score per epoch")]


def _attention_parts(run: Run) -> list[str]:
    w = run.attention
    if w is None or w.ndim != 2 or len(w) == 0:
        return [skip_note("No attention.npz in the run directory: attention figures skipped.")]
    return [
        figure("attention-profile", _fig_attention_profile(w), "Mean attention per time step"),
        figure(
            "attention-entropy",
            _fig_attention_entropy(attention_entropy(w), w.shape[1]),
            "Entropy of each sample's attention weights",
        ),
    ]


# --- figures -------------------------------------------------------------------------------------


def new_figure(size: tuple[float, float] = WIDE) -> tuple[Figure, Any]:
    """A new Agg figure and its single axes (draw inside ``matplotlib.rc_context(STYLE)``)."""
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _dates_axis(ax: Any) -> None:
    locator = AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _fig_cum_ic(ic: pd.Series, ric: pd.Series) -> Figure:
    fig, ax = new_figure()
    for series, name, color in ((ic, "IC", "C0"), (ric, "Rank IC", "C1")):
        # NaN days (too few pairs) add nothing to the cumulative sum.
        ax.plot(
            series.index.to_numpy(),
            series.fillna(0).cumsum().to_numpy(),
            color=color,
            label=f"{name} (mean {series.mean():.4f})",
        )
    ax.axhline(0, color="#888", linewidth=0.8)
    ax.set_title("Cumulative IC")
    ax.legend(loc="upper left")
    _dates_axis(ax)
    return fig


def _fig_monthly_ic(table: pd.DataFrame) -> Figure:
    fig, ax = new_figure((WIDE[0], max(1.6, 0.9 + 0.32 * len(table))))
    values = table.to_numpy(dtype=np.float64)
    vmax = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#f0f0f0")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
    for (row, col), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(col, row, f"{v:.3f}", ha="center", va="center", fontsize=6.5)
    ax.set_xticks(range(12), MONTHS)
    ax.set_yticks(range(len(table)), [str(y) for y in table.index])
    ax.grid(False)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("Monthly IC")
    fig.colorbar(image, ax=ax, shrink=0.9, pad=0.01)
    return fig


def _fig_quantile(groups: pd.DataFrame) -> Figure:
    fig, ax = new_figure()
    names = [c for c in groups.columns if c.startswith("Group")]
    colors = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, len(names)))
    dates = groups.index.to_numpy()
    # Qlib's model report accumulates group returns by summing (not compounding).
    for name, color in zip(names, colors, strict=True):
        ax.plot(dates, groups[name].fillna(0).cumsum().to_numpy(), color=color, label=name)
    ax.plot(
        dates,
        groups["long-short"].fillna(0).cumsum().to_numpy(),
        color="#d62728",
        linestyle="--",
        label="long-short",
    )
    ax.axhline(0, color="#888", linewidth=0.8)
    ax.set_title("Cumulative return by score group")
    ax.legend(loc="upper left", ncol=2)
    _dates_axis(ax)
    return fig


def _fig_excess(excess: pd.Series, excess_cost: pd.Series, bench: pd.Series) -> Figure:
    fig, ax = new_figure()
    dates = excess.index.to_numpy()
    lines = (
        (excess, "excess return without cost", "C0", "-"),
        (excess_cost, "excess return with cost", "C3", "-"),
        (bench, "benchmark", "#777777", ":"),
    )
    for series, name, color, style in lines:
        cum = series.fillna(0).cumsum().to_numpy()
        ax.plot(dates, cum, color=color, linestyle=style, label=f"{name} ({cum[-1]:+.3f})")
    ax.axhline(0, color="#888", linewidth=0.8)
    ax.set_title("Cumulative excess return (sum of daily returns)")
    ax.legend(loc="upper left")
    _dates_axis(ax)
    return fig


def _fig_drawdown(dd: pd.Series) -> Figure:
    fig, ax = new_figure()
    dates, values = dd.index.to_numpy(), dd.fillna(0).to_numpy()
    ax.fill_between(dates, values, 0, color="#d62728", alpha=0.35, linewidth=0)
    ax.plot(dates, values, color="#d62728", linewidth=0.9)
    low = int(np.argmin(values))
    ax.annotate(
        f"max drawdown {values[low]:.4f}",
        (dates[low], values[low]),
        xytext=(8, 4),
        textcoords="offset points",
        fontsize=7.5,
    )
    ax.set_title("Drawdown of the cumulative excess return with cost")
    _dates_axis(ax)
    return fig


def _fig_turnover(turnover: pd.Series) -> Figure:
    fig, ax = new_figure()
    dates = turnover.index.to_numpy()
    ax.plot(dates, turnover.to_numpy(), color="C2", linewidth=0.7, alpha=0.6, label="daily")
    ax.plot(
        dates,
        turnover.rolling(20, min_periods=1).mean().to_numpy(),
        color="C2",
        linewidth=1.6,
        label=f"20-day mean (overall {turnover.mean():.4f})",
    )
    ax.set_ylim(bottom=0)
    ax.set_title("Daily turnover")
    ax.legend(loc="upper right")
    _dates_axis(ax)
    return fig


def _fig_training(evals: dict[str, Any]) -> Figure:
    fig, ax = new_figure()
    metric = evals.get("metric", "loss")
    for key, color in (("train", "C0"), ("valid", "C1")):
        scores = evals.get(key) or []
        ax.plot(range(len(scores)), scores, color=color, marker="o", markersize=2.5, label=key)
    losses = evals.get("train_loss") or []
    if metric == "loss" and losses:  # on the scores' scale; what ``score_train=False`` leaves
        ax.plot(range(len(losses)), [-v for v in losses], color="C0", linestyle=":",
                label="training pass (−mean batch loss)")  # fmt: skip
    best = evals.get("best_epoch")
    valid = evals.get("valid") or []
    if isinstance(best, int) and 0 <= best < len(valid):
        ax.axvline(best, color="#555", linestyle="--", linewidth=0.9)
        ax.plot([best], [valid[best]], marker="*", markersize=11, color="C3", linestyle="none",
                label=f"best epoch {best} ({valid[best]:.4f})")  # fmt: skip
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("−loss" if metric == "loss" else str(metric))
    ax.set_title("Training curves (higher is better)")
    ax.legend(loc="best")
    return fig


def _fig_attention_profile(weights: np.ndarray) -> Figure:
    fig, ax = new_figure()
    steps = weights.shape[1]
    mean = weights.mean(axis=0, dtype=np.float64)
    ax.bar(np.arange(steps), mean, color="C4", width=0.8)
    ax.axhline(1 / steps, color="#555", linestyle="--", linewidth=0.9, label="uniform 1/T")
    # Step T−1 is today: label each bar by how many days before the prediction date it lies.
    every = max(1, steps // 12)
    ticks = [i for i in range(steps) if (steps - 1 - i) % every == 0]
    ax.set_xticks(ticks, [str(steps - 1 - i) for i in ticks])
    ax.set_xlabel("days ago")
    ax.set_ylabel("mean weight")
    ax.grid(axis="x", visible=False)
    ax.set_title(f"Attention profile ({len(weights):,} samples, T = {steps})")
    ax.legend(loc="upper left")
    return fig


def _fig_attention_entropy(entropy: np.ndarray, steps: int) -> Figure:
    fig, ax = new_figure()
    uniform = math.log(steps)
    finite = entropy[np.isfinite(entropy)]
    # Zoom on the samples but keep log T in view: the distance to uniform is the point.
    low = max(0.0, float(finite.min()) - 0.05 * uniform) if len(finite) else 0.0
    ax.hist(finite, bins=60, range=(low, uniform * 1.02), color="C9", edgecolor="none")
    ax.axvline(uniform, color="#d62728", linestyle="--", linewidth=1.1,
               label=f"uniform: log T = {uniform:.3f}")  # fmt: skip
    ax.axvline(float(np.mean(finite)), color="#333", linewidth=1.0,
               label=f"mean {np.mean(finite):.3f}")  # fmt: skip
    ax.set_xlabel("entropy (nats)")
    ax.set_ylabel("samples")
    ax.set_title("Attention entropy")
    ax.legend(loc="upper left")
    return fig


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
  background: #eef0f3; color: #1f2328; margin: 0; padding: 18px 28px; font-size: 14px; }
h1 { font-size: 22px; margin: 0 0 10px; }
h2 { font-size: 17px; margin: 26px 0 10px; border-bottom: 1px solid #c9ced6; padding-bottom: 4px; }
.mono, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #d5d9e0; text-align: left; }
table.num td { text-align: right; font-variant-numeric: tabular-nums; }
table.meta th { color: #57606a; font-weight: 500; }
details { margin: 6px 0; }
pre { font-size: 12px; background: #e3e6ea; padding: 8px; max-height: 360px; overflow: auto; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 16px; }
figure { margin: 0; }
figure img { display: block; max-width: 100%; height: auto; background: white;
  box-shadow: 0 1px 3px rgba(0, 0, 0, 0.12); }
figcaption { font-size: 12px; color: #57606a; margin-top: 4px; }
.skip { color: #8a5a00; font-style: italic; }
footer { margin-top: 28px; font-size: 12px; color: #57606a; }
"""
