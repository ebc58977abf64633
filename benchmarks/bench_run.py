"""The whole Alpha158 ALSTM benchmark run, alstm vs Qlib, on ../shared/data/cn_csi300.

Factors → processors → early-stopped training → test prediction → signal analysis → backtest,
with ``alstm run configs/alstm_alpha158.yaml`` and with Qlib's own workflow (``task_train`` on
the benchmark YAML, the same as ``qrun``), same seed, one job on the machine, each in a fresh
process with two torch threads. Qlib's DataLoader uses ``--qlib-workers`` processes (the YAML's
20 is sized for a large machine). Factor caches are off on both sides, so both compute
everything. Qlib takes about 20 minutes here. Prints a table and one JSON object last.

    python benchmarks/bench_run.py [--seed 1] [--qlib-workers 0] [--set KEY=VALUE ...]

``--set`` overrides alstm's config as ``alstm run --set`` does (e.g.
``model.kwargs.batch_threads=2``, ``model.kwargs.score_train=false`` to skip the per-epoch
train-set scoring that Qlib's workflow discards, or ``model.kwargs.precision=bfloat16``); the JSON
lists them as ``alstm_set``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
DATA = ROOT.parent / "shared" / "data" / "cn_csi300"
QLIB_PYTHON = Path(os.environ.get("ALSTM_QLIB_PYTHON", ROOT / ".venv-qlib" / "bin" / "python"))
QLIB_YAML = ROOT / "tests" / "workflow" / "qlib_yaml" / "workflow_config_alstm_Alpha158.yaml"


def alstm_worker(seed: int, data: str, out: str, overrides: list[str]) -> dict:
    """``alstm run`` of the Alpha158 benchmark config; returns wall seconds and test metrics."""
    from alstm.mkl_path import STATUS
    from alstm.workflow.config import load_config
    from alstm.workflow.pipeline import run

    cfg = load_config(ROOT / "configs" / "alstm_alpha158.yaml",
                      [f"data.provider={data}", f"seed={seed}", "tracking.enabled=false",
                       "model.kwargs.verbose=false", *overrides])  # fmt: skip
    t0 = time.perf_counter()
    metrics = run(cfg, Path(out) / "alstm", cache_dir=Path(out) / "cache")
    evals = json.loads((Path(out) / "alstm" / "evals.json").read_text())
    return {"seconds": time.perf_counter() - t0, "IC": metrics["IC"],
            "Rank IC": metrics["Rank IC"], "epochs": len(evals["valid"]),
            "mkl_intel_path": STATUS,
            "excess_with_cost_ir":
                metrics["excess_return_with_cost"]["information_ratio"]}  # fmt: skip


def qlib_worker(seed: int, data: str, out: str, workers: int) -> dict:
    """Qlib's workflow on the benchmark YAML (run inside .venv-qlib)."""
    import qlib
    import torch
    import yaml
    from qlib.model.trainer import task_train

    torch.set_num_threads(2)
    os.chdir(out)  # Qlib's experiment manager leaves a lock folder relative to the working dir
    config = yaml.safe_load(QLIB_YAML.read_text())
    model_kwargs = config["task"]["model"]["kwargs"]
    model_kwargs.update(seed=seed, n_jobs=workers, lr=float(model_kwargs["lr"]))
    qlib.init(provider_uri=data, region="cn", expression_cache=None, dataset_cache=None,
              kernels=2, logging_level="WARNING",
              exp_manager={"class": "MLflowExpManager", "module_path": "qlib.workflow.expm",
                           "kwargs": {"uri": Path(out, "mlruns").as_uri(),
                                      "default_exp_name": "bench"}})  # fmt: skip
    t0 = time.perf_counter()
    recorder = task_train(config["task"], experiment_name="bench")
    seconds = time.perf_counter() - t0
    ic = recorder.load_object("sig_analysis/ic.pkl")
    ric = recorder.load_object("sig_analysis/ric.pkl")
    port = recorder.load_object("portfolio_analysis/port_analysis_1day.pkl")
    ir = float(port.loc[("excess_return_with_cost", "information_ratio"), "risk"])
    return {"seconds": seconds, "IC": float(ic.mean()), "Rank IC": float(ric.mean()),
            "excess_with_cost_ir": ir}  # fmt: skip


def main() -> None:
    from _measure import machine, run_worker

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--qlib-workers", type=int, default=0)
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--set", action="append", default=[], help="alstm config override")
    args = p.parse_args()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "2",
        "NUMBA_NUM_THREADS": "2",
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }  # Qlib 0.9.7 uses a file store
    me = str(Path(__file__).resolve())
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for side, python in (("alstm", sys.executable), ("qlib", str(QLIB_PYTHON))):
            cmd = [python, me, "--worker", side, str(args.seed), args.data, tmp,
                   str(args.qlib_workers), *args.set]  # fmt: skip
            res[side] = run_worker(cmd, env)
    print(f"{'side':<7}{'seconds':>10}{'IC':>9}{'Rank IC':>9}{'IR (cost)':>11}{'RSS MB':>9}")
    for side, r in res.items():
        print(f"{side:<7}{r['seconds']:>10.1f}{r['IC']:>9.4f}{r['Rank IC']:>9.4f}"
              f"{r['excess_with_cost_ir']:>11.3f}{r['rss_mb']:>9.0f}")  # fmt: skip
    print(json.dumps({
        "alstm_s": round(res["alstm"]["seconds"], 1), "qlib_s": round(res["qlib"]["seconds"], 1),
        "ratio_run": round(res["qlib"]["seconds"] / res["alstm"]["seconds"], 2),
        "alstm_ic": res["alstm"]["IC"], "qlib_ic": res["qlib"]["IC"],
        "alstm_rank_ic": res["alstm"]["Rank IC"], "qlib_rank_ic": res["qlib"]["Rank IC"],
        "alstm_epochs": res["alstm"].get("epochs"), "seed": args.seed, "alstm_set": args.set,
        "alstm_mkl_intel_path": res["alstm"]["mkl_intel_path"],
        "alstm_rss_mb": round(res["alstm"]["rss_mb"], 1),
        "qlib_rss_mb": round(res["qlib"]["rss_mb"], 1), "machine": machine(),
    }))  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        side, seed, data, out, workers = sys.argv[2:7]
        if side == "alstm":
            print(json.dumps(alstm_worker(int(seed), data, out, sys.argv[7:])))
        else:
            print(json.dumps(qlib_worker(int(seed), data, out, int(workers))))
    else:
        main()
