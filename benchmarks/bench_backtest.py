"""Time alstm's TopkDropout backtest against Qlib's on the CSI300 test segment.

Predictions = raw label ``Ref($close,-2)/Ref($close,-1)-1`` + N(0, 0.1²) noise (seed 0), the
recipe of the parity test. Qlib runs in its own virtualenv (``ALSTM_QLIB_PYTHON``, default
``.venv-qlib/bin/python``) through ``tests/parity/qlib_scripts/evaluate_backtest.py``, which times
its own ``qlib.backtest.backtest`` call. The last line printed is one JSON object.

    python benchmarks/bench_backtest.py [--data ../shared/data/cn_csi300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from alstm.data.provider import QlibDataDir
from alstm.evaluate import ExchangeRules, TopkDropout, backtest

ROOT = Path(__file__).resolve().parents[1]
QLIB_SCRIPT = ROOT / "tests" / "parity" / "qlib_scripts" / "evaluate_backtest.py"
START, END = "2017-01-01", "2020-08-01"
EXCHANGE = {
    "limit_threshold": 0.095,
    "deal_price": "close",
    "open_cost": 0.0005,
    "close_cost": 0.0015,
    "min_cost": 5,
}


def make_predictions(data: QlibDataDir, seed: int = 0, noise: float = 0.1) -> pd.Series:
    """Label + Gaussian noise for CSI300 members over [START, END], by (datetime, instrument)."""
    cal = data.calendar
    end_row = int(cal.searchsorted(pd.Timestamp(END), side="right")) + 1
    panel = data.load(["close"], START, cal[end_row], markets=["csi300"])
    close = panel["close"]
    label = np.full_like(close, np.nan)
    label[:-2] = close[2:] / close[1:-1] - np.float32(1)
    rows = panel.rows("csi300")
    rows[panel.calendar > pd.Timestamp(END)] = False
    t, n = np.nonzero(rows)
    index = pd.MultiIndex.from_arrays(
        [panel.calendar[t], np.asarray(panel.instruments, dtype=object)[n]],
        names=["datetime", "instrument"],
    )
    lab = label[t, n].astype(np.float64)
    return pd.Series(
        lab + np.random.default_rng(seed).normal(0, noise, len(lab)), index, name="score"
    )


def time_alstm(pred: pd.Series, data_dir: Path, repeat: int) -> tuple[float, float, float]:
    """Best wall time (s) end to end from the data directory, best compute-only time on a loaded
    panel, and the final account value."""
    kwargs = {"strategy": TopkDropout(topk=50, n_drop=5), "rules": ExchangeRules(**EXCHANGE)}
    full, compute = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = backtest(pred, data_dir, START, END, **kwargs)
        full.append(time.perf_counter() - t0)
    instruments = sorted(pred.index.get_level_values("instrument").unique())
    panel = QlibDataDir(data_dir).load(
        ExchangeRules().fields, "2016-12-30", END, instruments=[*instruments, "SH000300"]
    )
    for _ in range(repeat):
        t0 = time.perf_counter()
        backtest(pred, panel, START, END, **kwargs)
        compute.append(time.perf_counter() - t0)
    return min(full), min(compute), float(result.report["account"].iloc[-1])


def time_qlib(pred_path: Path, data_dir: Path, qlib_python: Path) -> dict:
    """Run Qlib's backtest in its venv; returns its JSON (``backtest_s``, ``peak_rss_mb`` …)."""
    args = {
        "provider": str(data_dir),
        "pred": str(pred_path),
        "start": START,
        "end": END,
        "account": 100_000_000,
        "benchmark": "SH000300",
        "strategy_kwargs": {"topk": 50, "n_drop": 5},
        "exchange_kwargs": EXCHANGE,
    }
    out = pred_path.with_name("qlib_backtest.json")
    cmd = [str(qlib_python), str(QLIB_SCRIPT), "--out", str(out), "--args", json.dumps(args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"Qlib backtest failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    from _measure import machine

    default_data = Path(os.environ.get("ALSTM_SHARED_DATA", ROOT.parent / "shared" / "data"))
    default_qlib = os.environ.get("ALSTM_QLIB_PYTHON", str(ROOT / ".venv-qlib" / "bin" / "python"))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=default_data / "cn_csi300")
    p.add_argument("--qlib-python", type=Path, default=Path(default_qlib))
    p.add_argument("--repeat", type=int, default=3)
    ns = p.parse_args()

    pred = make_predictions(QlibDataDir(ns.data))
    alstm_s, alstm_compute_s, alstm_account = time_alstm(pred, ns.data, ns.repeat)
    alstm_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        pred_path = Path(tmp) / "pred.parquet"
        pred.to_frame().to_parquet(pred_path)
        qlib = time_qlib(pred_path, ns.data, ns.qlib_python)
    qlib_account = list(qlib["report"]["account"].values())[-1]

    days = len(qlib["report"]["account"])
    print(f"TopkDropout(50, 5) backtest, CSI300 {START} .. {END}: {days} days, {len(pred)} scores")
    print(f"{'':28s}{'alstm':>12s}{'qlib':>12s}")
    print(f"{'backtest wall time (s)':28s}{alstm_s:12.3f}{qlib['backtest_s']:12.3f}")
    print(f"{'  compute only, loaded (s)':28s}{alstm_compute_s:12.3f}{'':>12s}")
    print(f"{'peak RSS (MB)':28s}{alstm_rss:12.0f}{qlib['peak_rss_mb']:12.0f}")
    print(f"{'final account':28s}{alstm_account:12.0f}{qlib_account:12.0f}")
    print(f"speed-up: {qlib['backtest_s'] / alstm_s:.1f}x")
    summary = {
        "alstm_s": round(alstm_s, 4),
        "alstm_compute_s": round(alstm_compute_s, 4),
        "qlib_s": round(qlib["backtest_s"], 4),
        "ratio_backtest": round(qlib["backtest_s"] / alstm_s, 1),
        "alstm_rss_mb": round(alstm_rss, 1),
        "qlib_rss_mb": round(qlib["peak_rss_mb"], 1),
        "final_account_rel_diff": abs(alstm_account - qlib_account) / qlib_account,
        "machine": machine(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
