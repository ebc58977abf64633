"""ALSTM Alpha158 data pipeline (CSI300 2008-01-01 .. 2020-08-01): alstm vs Qlib, caches off.

Config: Alpha158 raw features + label, FilterCol(20) → RobustZScoreNorm(clip) → Fillna on the
infer data, DropnaLabel → CSRankNorm(label) on the learn data, fit 2008 .. 2014; TSDatasetH
step_len 20, fillna "ffill+bfill". Each side runs in its own fresh process with two workers.

Phases (seconds; imports and start-up excluded):
  load     the raw Alpha158 features + label (alstm: compute_factors with two numba threads;
           Qlib: the handler's data loader, D.features with ``kernels=2``)
  process  the handler's processors: raw → infer → learn (alstm: Frame + DataHandler; Qlib:
           ``fit_process_data``)
  prepare  the train/valid/test samplers (alstm: ``TSDatasetH.samples`` × 3 and a first
           one-sample gather, which loads the compiled kernel; Qlib: ``TSDatasetH.prepare`` × 3)
  gather   one pass over train: shuffled batches of 800, last partial batch dropped, as float
           tensors (alstm: ``SampleSet.gather``; Qlib: its sampler in a torch DataLoader, timed
           with num_workers 0 and 2; the faster counts)
Memory (``*_rss_mb``) is the peak summed RSS of the worker and its children (Qlib's joblib
data-loading processes) through load, process, prepare and the num_workers=0 pass, sampled
every 20 ms inside the worker; ``*_run_rss_mb`` is the same over the whole run (for Qlib it
includes the DataLoader's worker processes, whose copy-on-write pages are counted in each).
Prints a table, then one JSON object as the last line.

    python benchmarks/bench_datasets.py [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
DATA = ROOT.parent / "shared" / "data" / "cn_csi300"
QLIB_PYTHON = Path(os.environ.get("ALSTM_QLIB_PYTHON", ROOT / ".venv-qlib" / "bin" / "python"))
MARKET, START, END = "csi300", "2008-01-01", "2020-08-01"
FIT_START, FIT_END = "2008-01-01", "2014-12-31"
SEGMENTS = {
    "train": ("2008-01-01", "2014-12-31"),
    "valid": ("2015-01-01", "2016-12-31"),
    "test": ("2017-01-01", "2020-08-01"),
}
STEP_LEN, BATCH, WORKERS = 20, 800, 2
PHASES = ("load", "process", "prepare", "gather")


class TreePeak:
    """Peak summed RSS (MB) of this process and its children, sampled by a background thread."""

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self.mb = 0.0
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        import psutil

        while True:
            try:
                procs = [self._me, *self._me.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs if p.is_running())
                self.mb = max(self.mb, rss / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.02)


def alstm_worker(data: str, columns: list[str]) -> dict:
    """Run the pipeline with alstm; return seconds per phase and the peak RSS."""
    import numpy as np
    import torch

    from alstm.data.provider import QlibDataDir
    from alstm.dataset import Frame, TSDatasetH
    from alstm.dataset.presets import ALPHA158_ALSTM_COLUMNS, benchmark_handler
    from alstm.features.factors import LABEL, compute_factors, factor_set

    assert list(ALPHA158_ALSTM_COLUMNS) == columns
    peak = TreePeak()
    out: dict = {}
    t0 = time.perf_counter()
    exprs = {**factor_set("alpha158"), **LABEL}
    df = compute_factors(QlibDataDir(data), exprs, START, END, MARKET)
    t1 = time.perf_counter()
    raw = Frame.from_frame(df)
    del df
    handler = benchmark_handler(raw, "alpha158", (FIT_START, FIT_END))
    del raw
    t2 = time.perf_counter()
    ds = TSDatasetH(handler, SEGMENTS, step_len=STEP_LEN)
    train, _, test = (ds.samples(s) for s in ("train", "valid", "test"))
    train.gather(np.arange(1))
    t3 = time.perf_counter()
    perm = np.random.default_rng(0).permutation(len(train))
    seen = 0
    for i in range(0, len(perm) - BATCH + 1, BATCH):
        x, y = train.gather(perm[i : i + BATCH])
        feature, label = torch.from_numpy(x), torch.from_numpy(y)
        seen += len(label)
    t4 = time.perf_counter()
    out.update(load=t1 - t0, process=t2 - t1, prepare=t3 - t2, gather=t4 - t3)
    out.update(seen=seen, train=len(train), test=len(test), shape=list(feature.shape))
    out["peak_mb"] = peak.mb
    return out


def qlib_worker(data: str, columns: list[str]) -> dict:
    """Run the pipeline with Qlib (inside .venv-qlib) keeping ``columns``; return seconds per
    phase and the peak RSS."""
    import qlib
    import torch
    from torch.utils.data import DataLoader

    qlib.init(provider_uri=data, region="cn", expression_cache=None, dataset_cache=None,
              kernels=WORKERS, logging_level="WARNING")  # fmt: skip
    from qlib.contrib.data.handler import Alpha158
    from qlib.data.dataset import TSDatasetH
    from qlib.data.dataset.handler import DataHandler

    infer = [
        {"class": "FilterCol", "kwargs": {"col_list": columns}},
        {"class": "RobustZScoreNorm", "kwargs": {"fields_group": "feature", "clip_outlier": True}},
        {"class": "Fillna", "kwargs": {"fields_group": "feature"}},
    ]
    learn = [{"class": "DropnaLabel"}, {"class": "CSRankNorm", "kwargs": {"fields_group": "label"}}]
    peak = TreePeak()
    out: dict = {}
    t0 = time.perf_counter()
    handler = Alpha158(instruments=MARKET, start_time=START, end_time=END,
                       fit_start_time=FIT_START, fit_end_time=FIT_END, infer_processors=infer,
                       learn_processors=learn, init_data=False)  # fmt: skip
    DataHandler.setup_data(handler)  # load the raw data only
    t1 = time.perf_counter()
    handler.fit_process_data()
    t2 = time.perf_counter()
    ds = TSDatasetH(handler=handler, segments=SEGMENTS, step_len=STEP_LEN)
    samplers = {}
    for seg in SEGMENTS:
        key = "infer" if seg == "test" else "learn"
        samplers[seg] = ds.prepare(seg, col_set=["feature", "label"], data_key=key)
        samplers[seg].config(fillna_type="ffill+bfill")
    t3 = time.perf_counter()
    out.update(load=t1 - t0, process=t2 - t1, prepare=t3 - t2)
    torch.manual_seed(0)
    for workers in (0, WORKERS):
        loader = DataLoader(samplers["train"], batch_size=BATCH, shuffle=True, drop_last=True,
                            num_workers=workers)  # fmt: skip
        t = time.perf_counter()
        seen = 0
        for batch in loader:
            feature, label = batch[:, :, :-1].float(), batch[:, -1, -1].float()
            seen += len(label)
        out[f"gather_w{workers}"] = time.perf_counter() - t
        if workers == 0:
            out["peak_mb"] = peak.mb
    out["gather"] = min(out["gather_w0"], out[f"gather_w{WORKERS}"])
    out.update(seen=seen, train=len(samplers["train"]), test=len(samplers["test"]))
    out["shape"] = list(feature.shape)
    return out


def main() -> None:
    from _measure import machine, run_worker
    from alstm.dataset.presets import ALPHA158_ALSTM_COLUMNS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA))
    args = p.parse_args()
    env = {**os.environ, "NUMBA_NUM_THREADS": str(WORKERS), "OMP_NUM_THREADS": "1"}
    me = str(Path(__file__).resolve())
    cols = json.dumps(list(ALPHA158_ALSTM_COLUMNS))
    res = {
        side: run_worker([python, me, "--worker", side, args.data, cols], env)
        for side, python in (("alstm", sys.executable), ("qlib", str(QLIB_PYTHON)))
    }
    for key in ("seen", "train", "test", "shape"):
        if res["alstm"][key] != res["qlib"][key]:
            raise SystemExit(f"{key} differs: {res['alstm'][key]} vs {res['qlib'][key]}")
    print(f"{'phase':<10}{'alstm s':>10}{'qlib s':>10}{'ratio':>8}")
    summary: dict[str, float] = {}
    for phase in PHASES:
        a, q = res["alstm"][phase], res["qlib"][phase]
        print(f"{phase:<10}{a:>10.2f}{q:>10.2f}{q / a:>8.1f}")
        summary[f"alstm_{phase}_s"] = round(a, 3)
        summary[f"qlib_{phase}_s"] = round(q, 3)
        summary[f"ratio_{phase}"] = round(q / a, 1)
    a_prep = sum(res["alstm"][k] for k in ("process", "prepare"))
    q_prep = sum(res["qlib"][k] for k in ("process", "prepare"))
    summary["ratio_process_prepare"] = round(q_prep / a_prep, 1)
    summary["qlib_gather_w0_s"] = round(res["qlib"]["gather_w0"], 3)
    summary[f"qlib_gather_w{WORKERS}_s"] = round(res["qlib"][f"gather_w{WORKERS}"], 3)
    for side in ("alstm", "qlib"):
        summary[f"{side}_rss_mb"] = round(res[side]["peak_mb"], 1)
        summary[f"{side}_run_rss_mb"] = round(res[side]["rss_mb"], 1)
    print(f"peak RSS MB: alstm {summary['alstm_rss_mb']:.0f}, qlib {summary['qlib_rss_mb']:.0f}")
    summary["ratio_rss"] = round(summary["qlib_rss_mb"] / summary["alstm_rss_mb"], 2)
    summary["machine"] = machine()
    print(f"{res['alstm']['seen']} train samples gathered, batches of {res['alstm']['shape']}")
    print(json.dumps(summary))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        side, data, cols = sys.argv[2:5]
        worker = alstm_worker if side == "alstm" else qlib_worker
        print(json.dumps(worker(data, json.loads(cols))))
    else:
        main()
