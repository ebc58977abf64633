"""Attention study: where ALSTM's attention looks, and what it adds to the score.

From a finished run: the mean attention weight by lag (lag 0 = the prediction day), the entropy
of each sample's weights, and the mean profile on high- vs low-volatility test days. A day's
volatility is the cross-sectional std of its label (the realized return the model predicts,
``label.parquet``), split at the median over the days that have attention samples.

From a config, an ablation under the same seeds: Qlib's head (``Linear(2h→1)`` on the last step
and the attention-pooled state), the last step only (a plain GRU/LSTM head) and the
attention-pooled state only; the full model's first seed is also the run analysed above.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

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
from alstm.workflow.config import RunConfig, load_config
from alstm.workflow.report import attention_entropy, figure, new_figure, section, skip_note

VARIANTS = {
    "both": "full ALSTM (last step ⊕ attention-pooled)",
    "last": "last step only (plain RNN head)",
    "attention": "attention-pooled only",
}
VOLATILITY = (
    "volatility of a test day = cross-sectional std of that day's label (the raw forward return "
    "the model predicts), split at the median day"
)


@dataclass(frozen=True)
class AttentionProfile:
    """Attention statistics of one run's test samples (``T`` steps, ``lag = T − 1 − step``)."""

    mean: np.ndarray  # [T] mean weight per step
    high_vol: np.ndarray  # [T] the same over samples of high-volatility days
    low_vol: np.ndarray  # [T] … of low-volatility days
    entropy: np.ndarray  # [n] nats per sample
    high: np.ndarray  # [n] bool: the sample's day is a high-volatility day
    n_days: int

    @property
    def entropy_high(self) -> float:
        """Mean entropy on high-volatility days."""
        return float(self.entropy[self.high].mean())

    @property
    def entropy_low(self) -> float:
        """Mean entropy on low-volatility days."""
        return float(self.entropy[~self.high].mean())

    def table(self) -> pd.DataFrame:
        """One row per lag (0 = the prediction day): mean weight overall, high- and low-vol."""
        return pd.DataFrame({  # steps reversed: the last step is lag 0
            "lag": np.arange(len(self.mean)),
            "mean_weight": self.mean[::-1],
            "high_vol_weight": self.high_vol[::-1],
            "low_vol_weight": self.low_vol[::-1],
        })  # fmt: skip


def attention_profile(run_dir: Path) -> AttentionProfile:
    """Read ``attention.npz`` and ``label.parquet`` of a finished run and profile the weights."""
    with np.load(run_dir / "attention.npz") as npz:
        weights = np.asarray(npz["weights"], dtype=np.float64)
        dates = pd.to_datetime(npz["dates"])
    labels = pd.read_parquet(run_dir / "label.parquet")
    volatility = labels.groupby(pd.to_datetime(labels["datetime"]))["label"].std()
    day_vol = volatility.reindex(dates.unique())
    high_days = day_vol.index[day_vol > day_vol.median()]
    high = np.asarray(dates.isin(high_days))
    return AttentionProfile(
        mean=weights.mean(axis=0),
        high_vol=weights[high].mean(axis=0),
        low_vol=weights[~high].mean(axis=0),
        entropy=attention_entropy(weights),
        high=high,
        n_days=len(day_vol),
    )


def run_ablation(
    config: RunConfig,
    out: Path,
    seeds: list[int],
    cache_dir: Path | None = None,
    step: Step = log.info,
) -> pd.DataFrame:
    """Train every head variant under each seed into ``out/<variant>/seed<k>`` (finished runs
    reused); one row per run: variant, seed, test IC/Rank IC/ICIR/Rank ICIR, fit seconds."""
    rows = []
    for variant in VARIANTS:
        for seed in seeds:
            cfg = derive(config, {"seed": seed, "model.kwargs.head": variant})
            run = ensure_run(cfg, out / variant / f"seed{seed}", cache_dir, step)
            rows.append(
                {"variant": variant, "seed": seed, **run.signal(), "fit_seconds": run.fit_seconds}
            )
    return pd.DataFrame(rows)


def study_attention(
    source: Path,
    out: Path | None = None,
    n_seeds: int = 3,
    overrides: list[str] | None = None,
    cache_dir: Path | None = None,
    step: Step = log.info,
) -> Path:
    """The attention page of a finished run folder, or of a config (ablation trained first into
    ``out/ablation``); writes ``attention.html``, ``attention.csv`` (profile by lag),
    ``attention.json`` and, with a config, ``ablation.csv``; returns the page's path."""
    source = Path(source)
    ablation = None
    if source.is_dir():
        out = Path(out) if out is not None else source
        analysed, name = source, source.name
        if not (source / "attention.npz").is_file():
            raise FileNotFoundError(f"{source}: no attention.npz (not a finished ALSTM run?)")
    else:
        config = load_config(source, overrides or [])
        out = Path(out) if out is not None else Path("runs") / f"{config.name}-attention"
        seeds = seeds_for(config, n_seeds)
        runs = run_ablation(config, out / "ablation", seeds, cache_dir, step)
        ablation = (runs, summarize(runs, "variant", list(SIGNAL)))
        analysed, name = out / "ablation" / "both" / f"seed{seeds[0]}", config.name
    profile = attention_profile(analysed)
    out.mkdir(parents=True, exist_ok=True)
    profile.table().to_csv(out / "attention.csv", index=False)
    record: dict[str, Any] = {
        "run": str(analysed),
        "volatility": VOLATILITY,
        "profile": profile.table().to_dict(orient="list"),
        "entropy": {
            "mean": float(profile.entropy.mean()),
            "uniform": math.log(len(profile.mean)),
            "mean_high_vol": profile.entropy_high,
            "mean_low_vol": profile.entropy_low,
        },
        "n_samples": len(profile.entropy),
        "n_days": profile.n_days,
    }
    if ablation is not None:
        ablation[1].to_csv(out / "ablation.csv", index=False)
        record["ablation_runs"] = ablation[0].to_dict(orient="records")
        record["ablation"] = ablation[1].to_dict(orient="records")
    (out / "attention.json").write_text(json.dumps(record, indent=1, default=float))
    return write_page(
        out / "attention.html",
        f"Attention study: {name}",
        lambda: _body(profile, analysed, ablation),
        generator="alstm study attention",
    )


def _body(
    profile: AttentionProfile,
    analysed: Path,
    ablation: tuple[pd.DataFrame, pd.DataFrame] | None,
) -> list[str]:
    steps = len(profile.mean)
    intro = paragraph(
        f"Run <span class='mono'>{html.escape(str(analysed))}</span>: "
        f"{len(profile.entropy):,} test samples over {profile.n_days} days, T = {steps} steps. "
        f"The prediction day (lag 0) gets {profile.mean[-1]:.1%} of the attention on average "
        f"(uniform: {1 / steps:.1%}); mean entropy {profile.entropy.mean():.3f} nats (uniform: "
        f"log T = {math.log(steps):.3f}). "
        f"High- vs low-volatility days: mean entropy {profile.entropy_high:.3f} vs "
        f"{profile.entropy_low:.3f}; {VOLATILITY}."
    )
    parts = [
        section("profile", "Attention by lag", [
            intro,
            figure("profile", _fig_profile(profile), "Mean attention weight by lag"),
            figure("entropy", _fig_entropy(profile), "Entropy of each sample's weights"),
        ]),
    ]  # fmt: skip
    if ablation is None:
        parts.append(section("ablation", "Ablation", [skip_note(
            "Given a finished run: pass a config to train the three heads under the same seeds."
        )]))  # fmt: skip
    else:
        runs, summary = ablation
        named = summary.assign(variant=summary["variant"].map(VARIANTS))
        parts.append(section("ablation", "Ablation: what the attention contributes", [
            paragraph(
                "Same config and seeds, only the output layer differs; test-segment metrics, "
                "mean ± std over seeds."
            ),
            mean_std_table(named, "variant", list(SIGNAL)),
            "<details><summary>every run</summary>" + frame_table(runs) + "</details>",
        ]))  # fmt: skip
    return parts


def _fig_profile(profile: AttentionProfile) -> Figure:
    fig, ax = new_figure()
    table = profile.table()
    # Lines, not bars: the y axis zooms onto the weights, so the differences between the day
    # groups stay visible when the profile is close to uniform.
    for column, color, name in (("mean_weight", "C4", "all days"),
                                ("high_vol_weight", "C3", "high-volatility days"),
                                ("low_vol_weight", "C0", "low-volatility days")):  # fmt: skip
        ax.plot(table["lag"], table[column], color=color, marker="o", markersize=3, label=name)
    ax.axhline(1 / len(table), color="#555", linestyle="--", linewidth=0.9, label="uniform 1/T")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("lag (days before the prediction day)")
    ax.set_ylabel("mean weight")
    ax.set_title("Attention by lag")
    ax.legend(loc="best")
    return fig


def _fig_entropy(profile: AttentionProfile) -> Figure:
    fig, ax = new_figure()
    uniform = math.log(len(profile.mean))
    # Zoom on the samples but keep log T in view: the distance to uniform is the point.
    low = max(0.0, float(profile.entropy.min()) - 0.05 * uniform)
    bins = np.linspace(low, uniform * 1.01, 61)
    ax.hist(profile.entropy, bins=bins, color="C9", edgecolor="none", label="all days")
    for mask, color, name in ((profile.high, "C3", "high-volatility days"),
                              (~profile.high, "C0", "low-volatility days")):  # fmt: skip
        ax.hist(profile.entropy[mask], bins=bins, histtype="step", color=color, label=name)
    ax.axvline(uniform, color="#d62728", linestyle="--", linewidth=1.1,
               label=f"uniform: log T = {uniform:.3f}")  # fmt: skip
    ax.set_xlabel("entropy (nats)")
    ax.set_ylabel("samples")
    ax.set_title("Attention entropy")
    ax.legend(loc="upper left")
    return fig
