"""``alstm run``: wire data → factors → handler → dataset → model → records into a run folder.

This module only wires the stages; each computes in its own package.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alstm import __version__, mkl_path
from alstm.data.provider import QlibDataDir
from alstm.data.synth import write_synth
from alstm.dataset import DataHandler, DatasetH, Frame, TSDatasetH, build_processors
from alstm.evaluate import BacktestResult, ExchangeRules, TopkDropout, backtest, signal_metrics
from alstm.features.cache import default_cache_dir
from alstm.features.factors import factor_set, load_factors
from alstm.model import get_model
from alstm.workflow.config import Component, DataConfig, RunConfig, dump_config
from alstm.workflow.report import render_report
from alstm.workflow.run_dir import RunDir
from alstm.workflow.tracking import track_run

log = logging.getLogger("alstm.run")
Step = Callable[[str], None]


def resolve_provider(data: DataConfig, cache_dir: Path) -> Path:
    """The data directory of a config: the provider path, or the synthetic market it asks for
    (generated once under ``cache_dir/synth``)."""
    if data.provider != "synth":
        return Path(data.provider).expanduser()
    params = data.synth.model_dump(mode="json")
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir / "synth" / f"seed{data.synth.seed}-{key}"
    if not (path / "calendars").is_dir():
        write_synth(path, overwrite=True, market=data.market, benchmark=data.benchmark, **params)
    return path


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _processors(specs: list[Component], config: RunConfig) -> list:
    h = config.handler
    plain = [{"name": c.name, "kwargs": dict(c.kwargs)} for c in specs]
    return build_processors(plain, str(h.fit_start_time), str(h.fit_end_time))


def build_dataset(config: RunConfig, data: QlibDataDir, cache_dir: Path | None) -> DatasetH:
    """Factors → fitted handler → the configured dataset."""
    h = config.handler
    exprs = {**(factor_set(h.factors, **h.factor_kwargs) if h.factors else {}), **h.extra_factors}
    first = h.infer_processors[0] if h.infer_processors else None
    if (
        first is not None
        and first.name == "FilterCol"
        and first.kwargs.get("fields_group", "feature") == "feature"
    ):
        # The first processor keeps only these columns: computing the others is wasted work.
        keep = set(first.kwargs.get("col_list", ()))
        exprs = {name: e for name, e in exprs.items() if name in keep}
    exprs.update(h.label)
    raw = load_factors(data, exprs, h.start_time, h.end_time, config.data.market,
                       cache_dir=cache_dir)  # fmt: skip
    frame = Frame.from_frame(raw, label=tuple(h.label))
    handler = DataHandler(
        _processors(h.infer_processors, config), _processors(h.learn_processors, config)
    ).fit_process(frame)
    ds = config.dataset
    segments = {name: (str(a), str(b)) for name, (a, b) in ds.segments.items()}
    if ds.name == "TSDatasetH":
        return TSDatasetH(handler, segments, step_len=ds.step_len or 30)
    return DatasetH(handler, segments, d_feat=ds.d_feat)


def run(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    cache_dir: Path | None = None,
    step: Step = log.info,
) -> dict[str, Any]:
    """Run a config end to end into ``out``; returns the metrics also written to
    ``metrics.json`` (written last: its presence marks the run complete)."""
    t0 = time.perf_counter()
    rd = RunDir(out)
    rd.prepare(resume=resume, overwrite=overwrite)
    cache = cache_dir or default_cache_dir()
    rd.write_text("config.yaml", dump_config(config))
    step(f"data: {config.data.provider}")
    data = QlibDataDir(resolve_provider(config.data, cache))
    rd.write_json("meta.json", {
        "name": config.name,
        "alstm_version": __version__,
        "git_commit": _git_commit(),
        "data_dir": str(data.root),
        "data_fingerprint": data.fingerprint(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "mkl_intel_path": mkl_path.STATUS,
        "seed": config.seed,
    })  # fmt: skip
    step("factors and processors")
    dataset = build_dataset(config, data, cache)
    dataset.handler.save(rd / "handler")
    kwargs = {"seed": config.seed, **config.model.kwargs}
    model = get_model(config.model.name)(**kwargs)
    step(f"training {config.model.name} ({'resuming' if resume else 'from scratch'})")
    evals: dict[str, list[float]] = {}
    model.fit(dataset, evals_result=evals, save_path=rd / "model", resume=resume)
    best = int(np.argmax(evals["valid"])) if evals.get("valid") else None
    rd.write_json(
        "evals.json", {**evals, "best_epoch": best, "metric": kwargs.get("metric", "loss")}
    )
    step("predicting the test segment")
    pred = model.predict(dataset, "test")
    label = dataset.raw_label("test").rename("label")
    rd.write_parquet("pred.parquet", pred.rename("score").reset_index(), index=False)
    rd.write_parquet("label.parquet", label.reset_index(), index=False)
    if hasattr(model, "attention"):
        weights, index = model.attention(dataset, "test", max_samples=20_000)
        np.savez(rd / "attention.npz", weights=weights,
                 dates=index.get_level_values(0).to_numpy())  # fmt: skip
    metrics: dict[str, Any] = {}
    if config.records.signal_analysis is not None:
        sig = config.records.signal_analysis
        metrics.update(signal_metrics(pred, label, long_short=sig.ana_long_short,
                                      ann_scaler=sig.ann_scaler))  # fmt: skip
    pa = config.records.portfolio_analysis
    if pa is not None:
        step("backtest")
        result = portfolio_backtest(pred, config, data)
        rd.write_parquet("report_normal.parquet", result.report)
        rd.write_parquet("positions.parquet", result.positions)
        rd.write_parquet("trades.parquet", result.trades)
        risk = result.risk()
        metrics.update({c: {k: float(v) for k, v in risk[c].items()} for c in risk.columns})
    metrics = {k: float(v) if isinstance(v, int | float | np.floating) else v
               for k, v in metrics.items()}  # fmt: skip
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    rd.write_json("metrics.json", metrics)  # last result written: the run is complete
    step("report and tracking")
    render_report(rd.path)
    track_run(config.tracking, config, rd.path, metrics, evals)
    return metrics


def portfolio_backtest(pred: pd.Series, config: RunConfig, data: QlibDataDir) -> BacktestResult:
    """The backtest ``config.records.portfolio_analysis`` specifies, of ``pred`` on ``data``."""
    pa = config.records.portfolio_analysis
    if pa is None:
        raise ValueError(f"config {config.name!r} has no records.portfolio_analysis")
    bt = pa.backtest
    return backtest(
        pred,
        data,
        bt.start_time,
        bt.end_time,
        strategy=TopkDropout(**pa.strategy.kwargs),
        rules=ExchangeRules(**bt.exchange.model_dump()),
        benchmark=bt.benchmark or config.data.benchmark,
        account=bt.account,
    )


def read_pred(run_dir: str | Path) -> pd.Series:
    """The test predictions of a finished run as a Series indexed (datetime, instrument)."""
    frame = pd.read_parquet(Path(run_dir) / "pred.parquet")
    return frame.set_index(["datetime", "instrument"])["score"]
