"""Alpha158 and Alpha360 for CSI300 2008-01-01 .. 2020-08-01: alstm vs Qlib, cold, caches off.

Each side runs in its own fresh process on the same data with two workers (alstm: two numba
threads; Qlib: ``kernels=2`` joblib processes). Seconds are the factor computation itself (data
loading included, imports and start-up excluded); memory is the peak summed RSS of the process
tree. Each side runs ``--repeat`` times, alternating with the other: the seconds reported are the
median run (every run is listed), the memory the highest peak. On this VM the first touch of
fresh memory can cost a second on its own, depending on what ran before, hence the repeats.
Prints a table, then one JSON object as the last line.

    python benchmarks/bench_factors.py [--sets alpha158 alpha360] [--data DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
DATA = ROOT.parent / "shared" / "data" / "cn_csi300"
QLIB_PYTHON = Path(os.environ.get("ALSTM_QLIB_PYTHON", ROOT / ".venv-qlib" / "bin" / "python"))
SPAN = {"market": "csi300", "start": "2008-01-01", "end": "2020-08-01"}
WORKERS = 2


def alstm_worker(name: str, data: str) -> dict:
    """Compute one factor set with alstm; return seconds and the frame's shape."""
    from alstm.data.provider import QlibDataDir
    from alstm.features.factors import LABEL, compute_factors, factor_set

    exprs = {**factor_set(name), **LABEL}
    t0 = time.perf_counter()
    frame = compute_factors(QlibDataDir(data), exprs, SPAN["start"], SPAN["end"], SPAN["market"])
    return {"seconds": time.perf_counter() - t0, "shape": list(frame.shape)}


def qlib_worker(name: str, data: str) -> dict:
    """Compute one factor set with Qlib's D.features (run inside .venv-qlib)."""
    import qlib
    from qlib.contrib.data.loader import Alpha158DL, Alpha360DL
    from qlib.data import D

    qlib.init(provider_uri=data, region="cn", expression_cache=None, dataset_cache=None,
              kernels=WORKERS, logging_level="WARNING")  # fmt: skip
    fields, _ = {"alpha158": Alpha158DL, "alpha360": Alpha360DL}[name].get_feature_config()
    fields = [*fields, "Ref($close, -2)/Ref($close, -1) - 1"]
    t0 = time.perf_counter()
    frame = D.features(D.instruments(SPAN["market"]), fields, SPAN["start"], SPAN["end"])
    return {"seconds": time.perf_counter() - t0, "shape": list(frame.shape)}


def main() -> None:
    from _measure import machine, run_worker

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", default=["alpha158", "alpha360"])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--repeat", type=int, default=3, help="runs per side (median reported)")
    args = p.parse_args()
    env = {**os.environ, "NUMBA_NUM_THREADS": str(WORKERS), "OMP_NUM_THREADS": "1"}
    me = str(Path(__file__).resolve())
    summary: dict[str, float | list[float]] = {}
    rss = {"alstm": 0.0, "qlib": 0.0}
    print(f"{'set':<10}{'side':<7}{'seconds':>9}{'peak RSS MB':>13}  shape")
    for name in args.sets:
        runs: dict[str, list[dict]] = {"alstm": [], "qlib": []}
        for _ in range(args.repeat):
            for side, python in (("alstm", sys.executable), ("qlib", str(QLIB_PYTHON))):
                r = run_worker([python, me, "--worker", side, name, args.data], env)
                runs[side].append(r)
                print(f"{name:<10}{side:<7}{r['seconds']:>9.2f}{r['rss_mb']:>13.0f}  {r['shape']}")
        seconds = {}
        for side, rs in runs.items():
            seconds[side] = statistics.median(r["seconds"] for r in rs)
            peak = max(r["rss_mb"] for r in rs)
            rss[side] = max(rss[side], peak)
            summary[f"{side}_{name}_s"] = round(seconds[side], 3)
            summary[f"{side}_{name}_runs_s"] = [round(r["seconds"], 3) for r in rs]
            summary[f"{side}_{name}_rss_mb"] = round(peak, 1)
        shapes = {side: rs[0]["shape"] for side, rs in runs.items()}
        if shapes["alstm"] != shapes["qlib"]:
            raise SystemExit(f"{name}: shapes differ {shapes['alstm']} vs {shapes['qlib']}")
        summary[f"ratio_{name}"] = round(seconds["qlib"] / seconds["alstm"], 1)
    summary["alstm_rss_mb"] = round(rss["alstm"], 1)
    summary["qlib_rss_mb"] = round(rss["qlib"], 1)
    summary["machine"] = machine()
    print(json.dumps(summary))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        side, name, data = sys.argv[2:5]
        worker = alstm_worker if side == "alstm" else qlib_worker
        print(json.dumps(worker(name, data)))
    else:
        main()
