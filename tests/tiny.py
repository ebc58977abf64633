"""The tiny synthetic market the end-to-end tests run on: ``configs/demo.yaml`` shrunk to 40
instruments over 2016–2018, a 5-step window, hidden size 8 and a few epochs (seconds per run)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "data.synth.n_instruments=40", "data.synth.n_members=20",
    "data.synth.start=2016-01-01", "data.synth.end=2018-12-31",
    "handler.start_time=2016-01-01", "handler.end_time=2018-12-31",
    "handler.fit_start_time=2016-01-01", "handler.fit_end_time=2017-06-30",
    "dataset.segments.train=[2016-01-01, 2017-06-30]",
    "dataset.segments.valid=[2017-07-01, 2017-12-31]",
    "dataset.segments.test=[2018-01-01, 2018-11-30]",
    "dataset.step_len=5", "model.kwargs.hidden_size=8", "model.kwargs.n_epochs=3",
    "model.kwargs.early_stop=5", "model.kwargs.batch_size=256", "model.kwargs.verbose=false",
    "records.portfolio_analysis.strategy.kwargs.topk=5",
    "records.portfolio_analysis.strategy.kwargs.n_drop=1",
    "records.portfolio_analysis.backtest.start_time=2018-01-01",
    "records.portfolio_analysis.backtest.end_time=2018-11-30",
    "tracking.enabled=false",
]  # fmt: skip
