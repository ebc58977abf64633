"""ALSTM training throughput: alstm vs Qlib on the same synthetic data of the benchmark's size.

Two configurations (SPEC §7–8), batch 800, hidden 64, 2 GRU layers, Adam 1e-3:

- ``flat`` (Alpha360, Qlib ``pytorch_alstm.ALSTM``): 360 features per row (6 fields × 60 lags);
  Qlib trains from pandas frames, alstm from a ``FlatSamples`` store.
- ``ts`` (Alpha158, Qlib ``pytorch_alstm_ts.ALSTM``): 20-step windows of 20 features; Qlib reads
  a ``TSDataSampler`` through a torch ``DataLoader`` (``--qlib-workers`` worker processes; the
  YAML's 20 is sized for a large machine), alstm gathers ``WindowSamples`` batches in-process.

Data: 300 instruments × (2000 train + 500 valid + 800 test) dates ≈ 600k / 150k / 240k samples
(``--scale`` shrinks the date counts; times are then extrapolated to full size, linear in the
sample count, and the output says so). Each side runs ``--epochs`` epochs (early stopping off)
in its own process with ``--threads`` torch threads (alstm splits each training batch over them,
``batch_threads``, unless ``--batch-threads`` says otherwise); an epoch is one training pass
plus Qlib's two evaluation passes (train and valid). Epoch seconds are the fastest epoch's (the
one least disturbed by other load on the machine; the mean is reported too). Memory is the peak
summed RSS of the process tree (DataLoader workers included). Prints a table, then one JSON
object as the last line.

    python benchmarks/bench_train.py [--configs flat ts] [--epochs 2] [--scale 1.0]
        [--threads 2] [--device cpu|cuda] [--qlib-workers 2] [--batch-threads N]
        [--qlib-mkl-intel-path]

alstm runs as ``import alstm`` sets it up: on an AMD CPU with AVX-512, oneMKL on its AVX-512
kernels (``alstm.mkl_path``; the JSON's ``alstm_mkl_intel_path`` says what happened). Qlib runs
as installed, unless ``--qlib-mkl-intel-path`` preloads the same library into its process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
QLIB_PYTHON = Path(os.environ.get("ALSTM_QLIB_PYTHON", ROOT / ".venv-qlib" / "bin" / "python"))
N_INST = 300
DATES = {"train": 2000, "valid": 500, "test": 800}
STEP_LEN = 20  # ts windows
FLAT = (6, 60)  # fields × lags of a flat row
BATCH = 800
HYPER = {"hidden_size": 64, "num_layers": 2, "dropout": 0.0, "lr": 1e-3, "batch_size": BATCH}


# ------------------------------------------------------------------------------ shared data
def make_data(config: str, scale: float) -> tuple[dict[str, Any], pd.DatetimeIndex, list[str]]:
    """Seeded synthetic arrays (identical on both sides). flat: per segment ``features`` float32
    ``[n, 360]`` and ``label`` float32 ``[n]``, date-major rows. ts: one panel ``features``
    float32 ``[dates, inst, 20]`` and ``label`` float64 ``[dates, inst]`` over all segments plus
    ``STEP_LEN`` leading history dates; ``bounds`` gives each segment's date rows."""
    rng = np.random.default_rng(0)
    n_dates = {k: max(int(v * scale), 2) for k, v in DATES.items()}
    insts = [f"SH{600000 + i}" for i in range(N_INST)]
    if config == "flat":
        total = sum(n_dates.values())
        dates = pd.bdate_range("2008-01-01", periods=total)
        seg, lo = {}, 0
        for name, n in n_dates.items():
            rows = n * N_INST
            seg[name] = {
                "features": rng.standard_normal((rows, FLAT[0] * FLAT[1]), dtype=np.float32),
                "label": rng.standard_normal(rows, dtype=np.float32),
                "dates": (lo, lo + n),
            }
            lo += n
        return seg, dates, insts
    total = STEP_LEN + sum(n_dates.values())
    dates = pd.bdate_range("2008-01-01", periods=total)
    bounds, lo = {}, STEP_LEN
    for name, n in n_dates.items():
        bounds[name] = (lo, lo + n)
        lo += n
    data = {
        "features": rng.standard_normal((total, N_INST, 20), dtype=np.float32),
        "label": rng.standard_normal((total, N_INST)),
        "bounds": bounds,
    }
    return data, dates, insts


def _index(dates: pd.DatetimeIndex, insts: list[str]) -> pd.MultiIndex:
    return pd.MultiIndex.from_product([dates, insts], names=["datetime", "instrument"])


# -------------------------------------------------------------------------------- workers
def alstm_worker(
    config: str, epochs: int, scale: float, threads: int, device: str, batch_threads: int
) -> dict:
    """Fit alstm's ALSTM for ``epochs`` epochs; time the passes and the test prediction."""
    # alstm before torch, as the CLI does (alstm.mkl_path); the model sets the threads itself
    import alstm.model.alstm as alstm_module
    from alstm import mkl_path
    from alstm.dataset.samples import FlatSamples, WindowSamples
    from alstm.model import ALSTM

    data, dates, insts = make_data(config, scale)
    if config == "flat":
        sets = {
            name: FlatSamples(
                d["features"], d["label"], _index(dates[slice(*d["dates"])], insts), FLAT[0]
            )
            for name, d in data.items()
        }
    else:
        store = np.concatenate(
            [data["features"], data["label"][..., None].astype(np.float32)], axis=2
        ).transpose(1, 0, 2)  # [inst, dates, F + 1]
        store = np.ascontiguousarray(store)
        exists = np.ones(store.shape[:2], bool)
        sets = {}
        for name, (lo, hi) in data["bounds"].items():
            inst, date = np.divmod(np.arange((hi - lo) * N_INST), hi - lo)  # instrument-major
            index = pd.MultiIndex.from_arrays(
                [dates[lo + date], np.asarray(insts)[inst]], names=["datetime", "instrument"]
            )
            sets[name] = WindowSamples(store, exists, inst, lo + date, index, STEP_LEN)

    class Dataset:
        def samples(self, segment: str) -> Any:
            return sets[segment]

    epochs_log: list[dict[str, float]] = []
    for name, key in (("train_epoch", "train"), ("evaluate", "eval")):
        setattr(alstm_module, name, _timed(getattr(alstm_module, name), epochs_log, key))
    d_feat = FLAT[0] if config == "flat" else 20
    model = ALSTM(d_feat=d_feat, n_epochs=epochs, early_stop=epochs + 1, seed=0, device=device,
                  n_threads=threads, batch_threads=batch_threads, verbose=False,
                  **HYPER)  # fmt: skip
    ds = Dataset()
    model.fit(ds)
    t0 = time.perf_counter()
    model.predict(ds)
    summary = _summary(epochs_log, len(sets["train"]), time.perf_counter() - t0)
    return {**summary, "mkl_intel_path": mkl_path.STATUS}


def qlib_worker(
    config: str, epochs: int, scale: float, threads: int, device: str, workers: int
) -> dict:
    """Fit Qlib's ALSTM (run inside .venv-qlib) through its own fit/predict code."""
    import torch

    torch.set_num_threads(threads)
    data, dates, insts = make_data(config, scale)
    gpu = 0 if device.startswith("cuda") else -1
    if config == "flat":
        from qlib.contrib.model.pytorch_alstm import ALSTM

        names = [f"{f}{lag}" for f in ("CLOSE", "OPEN", "HIGH", "LOW", "VWAP", "VOLUME")
                 for lag in range(FLAT[1] - 1, -1, -1)]  # fmt: skip
        frames = {}
        for name, d in data.items():
            index = _index(dates[slice(*d["dates"])], insts)
            feature = pd.DataFrame(d["features"], index=index, columns=names)
            label = pd.DataFrame({"LABEL0": d["label"]}, index=index)
            frames[name] = pd.concat({"feature": feature, "label": label}, axis=1)
        del data

        class Dataset:
            def prepare(self, segments, col_set=None, data_key=None):
                if isinstance(segments, str):
                    frame = frames[segments]
                    return frame[col_set] if isinstance(col_set, str) else frame
                return [frames[s] for s in segments]

        model = ALSTM(d_feat=FLAT[0], GPU=gpu, **common_qlib(epochs))
        n_train = len(frames["train"])
    else:
        from qlib.contrib.model.pytorch_alstm_ts import ALSTM
        from qlib.data.dataset import TSDataSampler

        feats, label = data["features"], data["label"]
        samplers = {}
        for name, (lo, hi) in data["bounds"].items():
            # the fetched frame starts STEP_LEN dates early (TSDatasetH's history padding)
            block = slice(lo - STEP_LEN, hi)
            index = _index(dates[block], insts)
            frame = pd.DataFrame(feats[block].reshape(-1, 20), index=index,
                                 columns=[f"F{i}" for i in range(20)])  # fmt: skip
            frame["LABEL0"] = label[block].reshape(-1)  # float32 features + float64 label
            samplers[name] = TSDataSampler(frame, dates[lo], dates[hi - 1], STEP_LEN)
        del data, feats, label

        class Dataset:
            def prepare(self, segment, col_set=None, data_key=None):
                return samplers[segment]

        model = ALSTM(d_feat=20, GPU=gpu, n_jobs=workers, **common_qlib(epochs))
        n_train = len(samplers["train"])
    epochs_log: list[dict[str, float]] = []
    model.train_epoch = _timed(model.train_epoch, epochs_log, "train")
    model.test_epoch = _timed(model.test_epoch, epochs_log, "eval")
    ds = Dataset()
    model.fit(ds)
    t0 = time.perf_counter()
    model.predict(ds)
    return _summary(epochs_log, n_train, time.perf_counter() - t0)


def common_qlib(epochs: int) -> dict:
    """Qlib constructor arguments shared by both configurations."""
    return {**HYPER, "n_epochs": epochs, "early_stop": epochs + 1, "metric": "loss", "seed": 0}


def _timed(fn: Any, log: list[dict[str, float]], key: str) -> Any:
    """``fn`` adding its seconds to ``log[-1][key]``; a ``"train"`` call opens a new epoch."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if key == "train":
            log.append({"train": 0.0, "eval": 0.0})
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        log[-1][key] += time.perf_counter() - t0
        return out

    return wrapper


def _summary(log: list[dict[str, float]], n_train: int, predict_s: float) -> dict:
    """Seconds of the fastest epoch (least disturbed by other load) and of the mean epoch."""
    best = min(log, key=lambda e: e["train"] + e["eval"])
    return {
        "epoch_s": best["train"] + best["eval"],
        "train_pass_s": best["train"],
        "eval_passes_s": best["eval"],
        "mean_epoch_s": sum(e["train"] + e["eval"] for e in log) / len(log),
        "predict_s": predict_s,
        "n_train": n_train,
    }


# ----------------------------------------------------------------------------------- main
def _mkl_shim() -> str:
    """Path of alstm's built ``_mkl_intel_path`` library (for ``--qlib-mkl-intel-path``)."""
    from alstm.mkl_path import SHIM, shim_path

    path = shim_path()
    if path is None:
        raise SystemExit(f"{SHIM} is not built; reinstall alstm with a C compiler present")
    return path


def main() -> None:
    from _measure import machine, run_worker

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["flat", "ts"], choices=["flat", "ts"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the dates to use")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--qlib-workers", type=int, default=2)
    p.add_argument(
        "--batch-threads",
        type=int,
        default=None,
        help="alstm's batch_threads (default: --threads on the CPU, 1 on a GPU)",
    )
    p.add_argument(
        "--qlib-mkl-intel-path",
        action="store_true",
        help="run Qlib with alstm's oneMKL shim preloaded too (alstm.mkl_path; AMD CPUs)",
    )
    args = p.parse_args()
    if args.batch_threads is None:
        args.batch_threads = args.threads if args.device == "cpu" else 1
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "NUMBA_NUM_THREADS": threads}  # fmt: skip
    qlib_env = {**env, "LD_PRELOAD": _mkl_shim()} if args.qlib_mkl_intel_path else env
    me = str(Path(__file__).resolve())
    common = [str(args.epochs), str(args.scale), threads, args.device]
    load_before = os.getloadavg()[0]
    summary: dict[str, Any] = {
        "device": args.device,
        "threads": args.threads,
        "epochs": args.epochs,
        "qlib_workers": args.qlib_workers,
        "alstm_batch_threads": args.batch_threads,
    }
    if args.scale != 1.0:
        summary["extrapolated_from_scale"] = args.scale
    summary["qlib_mkl_intel_path"] = "on (LD_PRELOAD)" if args.qlib_mkl_intel_path else "off"
    rss = {"alstm": 0.0, "qlib": 0.0}
    print(f"{'config':<7}{'side':<7}{'epoch s':>10}{'train s':>10}{'eval s':>10}"
          f"{'samples/s':>11}{'predict s':>11}{'peak RSS MB':>13}")  # fmt: skip
    for config in args.configs:
        res = {}
        for side, python in (("alstm", sys.executable), ("qlib", str(QLIB_PYTHON))):
            extra = [str(args.qlib_workers if side == "qlib" else args.batch_threads)]
            cmd = [python, me, "--worker", side, config, *common, *extra]
            r = run_worker(cmd, qlib_env if side == "qlib" else env)
            for key in ("epoch_s", "train_pass_s", "eval_passes_s", "mean_epoch_s", "predict_s"):
                r[key] /= args.scale  # linear in the number of samples
            r["samples_per_s"] = r["n_train"] / args.scale / r["epoch_s"]
            res[side] = r
            if side == "alstm":
                summary["alstm_mkl_intel_path"] = r["mkl_intel_path"]
            rss[side] = max(rss[side], r["rss_mb"])
            print(f"{config:<7}{side:<7}{r['epoch_s']:>10.1f}{r['train_pass_s']:>10.1f}"
                  f"{r['eval_passes_s']:>10.1f}{r['samples_per_s']:>11.0f}{r['predict_s']:>11.1f}"
                  f"{r['rss_mb']:>13.0f}")  # fmt: skip
            summary[f"{side}_{config}_epoch_s"] = round(r["epoch_s"], 2)
            summary[f"{side}_{config}_mean_epoch_s"] = round(r["mean_epoch_s"], 2)
            summary[f"{side}_{config}_train_samples_per_s"] = round(r["samples_per_s"])
            summary[f"{side}_{config}_predict_s"] = round(r["predict_s"], 2)
            summary[f"{side}_{config}_rss_mb"] = round(r["rss_mb"], 1)
        for key in ("epoch", "predict"):
            ratio = res["qlib"][f"{key}_s"] / res["alstm"][f"{key}_s"]
            summary[f"ratio_{key}_{config}"] = round(ratio, 2)
    summary["alstm_rss_mb"] = round(rss["alstm"], 1)
    summary["qlib_rss_mb"] = round(rss["qlib"], 1)
    summary["machine"] = machine()
    summary["load_avg_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(summary))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        side, config, epochs, scale, threads, device = sys.argv[2:8]
        args = (config, int(epochs), float(scale), int(threads), device)
        worker = alstm_worker if side == "alstm" else qlib_worker
        print(json.dumps(worker(*args, int(sys.argv[8]))))
    else:
        main()
