"""A fake but well-formed run directory (seeded random data) for report tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

CONFIG_YAML = """\
name: fake_alstm
seed: 7
data: {provider: synth, market: syn100, benchmark: SYNBENCH}
handler: {factors: alpha360, start_time: 2020-01-01, end_time: 2020-12-31,
  fit_start_time: 2020-01-01, fit_end_time: 2020-06-30}
dataset:
  name: TSDatasetH
  step_len: 20
  segments: {train: [2020-01-01, 2020-06-30], valid: [2020-07-01, 2020-08-31],
    test: [2020-09-01, 2020-12-31]}
model: {name: ALSTM, kwargs: {d_feat: 6, hidden_size: 64}}
"""


def make_run_dir(
    path: Path,
    *,
    n_days: int = 60,
    n_instruments: int = 30,
    steps: int = 20,
    seed: int = 0,
    backtest: bool = True,
    evals: bool = True,
    attention: bool = True,
) -> Path:
    """Write metrics, meta, config, pred, label and (optionally) backtest report, evals and
    attention weights [n_days · n_instruments, steps] under ``path``; return ``path``."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    days = pd.bdate_range("2020-09-01", periods=n_days)
    insts = [f"SH{600000 + i}" for i in range(n_instruments)]
    idx = pd.MultiIndex.from_product([days, insts], names=["datetime", "instrument"])
    label = rng.normal(0.0, 0.02, len(idx))
    score = 0.1 * label / 0.02 + rng.normal(0.0, 1.0, len(idx))  # a weakly informative signal
    label[rng.random(len(idx)) < 0.02] = np.nan
    frame = idx.to_frame(index=False)
    frame.assign(score=score.astype(np.float32)).to_parquet(path / "pred.parquet")
    frame.assign(label=label.astype(np.float32)).to_parquet(path / "label.parquet")
    metrics: dict[str, object] = {"IC": 0.05, "ICIR": 0.4, "Rank IC": 0.048, "Rank ICIR": 0.38}
    if backtest:
        metrics |= _write_backtest(path, days, rng)
    if evals:
        _write_evals(path, rng)
    if attention:
        _write_attention(path, len(idx), steps, rng, days)
    meta = {
        "alstm_version": "0.1.0",
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "data_fingerprint": "sha256:feedbeef",
        "created": "2024-05-01T12:00:00+00:00",
    }
    (path / "meta.json").write_text(json.dumps(meta))
    (path / "config.yaml").write_text(CONFIG_YAML)
    metrics["seconds"] = 12.5
    (path / "metrics.json").write_text(json.dumps(metrics))  # last: the run is complete
    return path


def _write_backtest(path: Path, days: pd.DatetimeIndex, rng: np.random.Generator) -> dict:
    n = len(days)
    bench = rng.normal(0.0003, 0.012, n)
    ret = bench + rng.normal(0.0006, 0.004, n)
    turnover = np.clip(rng.normal(0.2, 0.03, n), 0, None)
    turnover[0] = 1.0
    cost = turnover * 0.001
    account = 1e8 * np.cumprod(1 + ret - cost)
    report = pd.DataFrame(
        {
            "account": account,
            "return": ret,
            "total_turnover": np.cumsum(turnover) * 1e8,
            "turnover": turnover,
            "total_cost": np.cumsum(cost) * 1e8,
            "cost": cost,
            "value": account * 0.98,
            "cash": account * 0.02,
            "bench": bench,
        },
        index=pd.Index(days, name="datetime"),
    )
    report.to_parquet(path / "report_normal.parquet")
    risk = {"mean": 0.0, "std": 0.0, "annualized_return": 0.1, "information_ratio": 1.2,
            "max_drawdown": -0.05}  # fmt: skip
    return {"excess_return_without_cost": risk, "excess_return_with_cost": risk}


def _write_evals(path: Path, rng: np.random.Generator) -> None:
    epochs = np.arange(12)
    train = -1.0 + 0.02 * np.sqrt(epochs) + rng.normal(0, 0.002, 12)
    valid = -1.0 + 0.01 * np.minimum(epochs, 6) - 0.003 * np.maximum(epochs - 6, 0)
    best = int(np.argmax(valid))
    evals = {"train": train.tolist(), "valid": valid.tolist(), "best_epoch": best, "metric": "loss"}
    (path / "evals.json").write_text(json.dumps(evals))


def _write_attention(
    path: Path, n: int, steps: int, rng: np.random.Generator, days: pd.DatetimeIndex
) -> None:
    # Recent days weigh more on average, with per-sample noise (a softmax of random logits).
    logits = np.linspace(-1.0, 1.0, steps) + rng.normal(0.0, 0.7, (n, steps))
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    w = (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
    dates = np.repeat(days.to_numpy(), n // len(days))
    np.savez(path / "attention.npz", weights=w, dates=dates)
