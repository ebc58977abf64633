"""What the studies share: derived configs, timed and reusable runs, summary tables, pages.

A study run is a plain ``alstm run`` folder (``alstm.workflow.pipeline.run``) plus
``study_timing.json``: the wall seconds of ``model.fit``, taken between the pipeline's "training"
and "predicting" steps (it excludes factors, processors, prediction and the backtest). A folder
that already holds ``metrics.json`` is reused; one holding an unfinished run is resumed (its
timing then covers only the resumed epochs).
"""

from __future__ import annotations

import html
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd

from alstm.workflow.config import RunConfig, set_override
from alstm.workflow.pipeline import run as run_pipeline
from alstm.workflow.report import STYLE, html_document, write_html
from alstm.workflow.run_dir import COMPLETE_MARKER

log = logging.getLogger("alstm.study")
Step = Callable[[str], None]
TIMING = "study_timing.json"
#: Test-segment signal metrics every study reports (keys of ``metrics.json``).
SIGNAL = ("IC", "Rank IC", "ICIR", "Rank ICIR")


def seeds_for(config: RunConfig, n: int) -> list[int]:
    """``n`` consecutive seeds starting at the config's seed (0 when it has none)."""
    if n < 1:
        raise ValueError(f"--seeds {n}: need at least one seed")
    base = config.seed if config.seed is not None else 0
    return [base + i for i in range(n)]


def derive(config: RunConfig, changes: Mapping[str, Any]) -> RunConfig:
    """``config`` with dotted-path ``changes`` applied (``{"model.kwargs.head": "last"}``) and
    validated again."""
    tree = config.model_dump(mode="json")
    for key, value in changes.items():
        set_override(tree, f"{key}={json.dumps(value)}")  # JSON is YAML: values stay typed
    return RunConfig.model_validate(tree)


@dataclass(frozen=True)
class StudyRun:
    """The numbers a study reads from one finished run folder."""

    path: Path
    metrics: dict[str, Any]
    evals: dict[str, Any]
    fit_seconds: float  # NaN when the folder has no study_timing.json

    @property
    def epochs_run(self) -> int:
        """Epochs trained (one valid score each)."""
        return len(self.evals.get("valid", []))

    @property
    def best_epoch(self) -> int | None:
        """0-based epoch whose weights were kept."""
        return self.evals.get("best_epoch")

    def signal(self) -> dict[str, float]:
        """Test IC, Rank IC, ICIR and Rank ICIR (NaN where the run has no signal analysis)."""
        return {name: float(self.metrics.get(name, math.nan)) for name in SIGNAL}


def ensure_run(
    config: RunConfig, out: Path, cache_dir: Path | None = None, step: Step = log.info
) -> StudyRun:
    """Run ``config`` into ``out`` unless a finished run is there; return its numbers."""
    out = Path(out)
    if not (out / COMPLETE_MARKER).is_file():
        started = out.is_dir() and any(out.iterdir())
        fit_start: list[float] = []

        def timed_step(message: str) -> None:
            if message.startswith("training"):
                fit_start.append(time.perf_counter())
            elif message.startswith("predicting") and fit_start:
                # Written before metrics.json, so a finished run always has its timing.
                seconds = round(time.perf_counter() - fit_start[-1], 3)
                (out / TIMING).write_text(json.dumps({"fit_seconds": seconds}))
            step(f"{out}: {message}")

        run_pipeline(config, out, resume=started, cache_dir=cache_dir, step=timed_step)
    timing = _read_json(out / TIMING)
    return StudyRun(
        path=out,
        metrics=_read_json(out / COMPLETE_MARKER),
        evals=_read_json(out / "evals.json"),
        fit_seconds=float(timing.get("fit_seconds", math.nan)),
    )


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def summarize(runs: pd.DataFrame, by: str, columns: Sequence[str]) -> pd.DataFrame:
    """Per value of ``by`` (in first-seen order): ``n`` runs and the mean and std (ddof 1, NaN
    for one run) of each of ``columns``, as ``<column> mean`` / ``<column> std``."""
    groups = runs.groupby(by, sort=False)[list(columns)]
    stats = groups.agg(["mean", "std"])
    stats.columns = [f"{c} {s}" for c, s in stats.columns]
    stats.insert(0, "n", groups.size())
    return stats.reset_index()


def mean_std_table(summary: pd.DataFrame, by: str, columns: Sequence[str], digits: int = 4) -> str:
    """``summary`` (from :func:`summarize`) as an HTML table of ``mean ± std`` cells."""

    def cell(mean: float, std: float) -> str:
        if not math.isfinite(mean):
            return "–"
        return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if math.isfinite(std) else "")

    head = "".join(f"<th>{html.escape(c)}</th>" for c in (by, "n", *columns))
    rows = "".join(
        f"<tr><th>{html.escape(str(r[by]))}</th><td>{int(r['n'])}</td>"
        + "".join(f"<td>{cell(r[f'{c} mean'], r[f'{c} std'])}</td>" for c in columns)
        + "</tr>"
        for _, r in summary.iterrows()
    )
    return f"<table class='num'><tr>{head}</tr>{rows}</table>"


def frame_table(frame: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    """A plain HTML table of ``frame`` (no index), numbers right-aligned."""
    return frame.to_html(
        index=False, classes="num", border=0, na_rep="–", float_format=float_format.format
    )


def paragraph(text: str) -> str:
    """``text`` (may hold inline HTML) as a ``<p>``."""
    return f"<p>{text}</p>"


def write_page(out: Path, title: str, render: Callable[[], list[str]], generator: str) -> Path:
    """Write an HTML page whose body ``render`` builds (figures drawn in the report's style)."""
    with matplotlib.rc_context(STYLE):
        body = [f"<header><h1>{html.escape(title)}</h1></header>", *render()]
    return write_html(out, html_document(title, body, generator=generator))
