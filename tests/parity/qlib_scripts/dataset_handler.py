"""Qlib reference: a benchmark handler's processed infer/learn data and TSDataSampler windows (NPZ).

Saves only what the parity test compares: the fitted RobustZScoreNorm statistics, per-column
checksums of I and L, a fixed random sample of their rows, L's rows and (rank-normalized) label
in full, and, with ``step_len``, the sample order of the train (L) and test (I) samplers and the
windows of a few hundred chosen samples (random ones, ones whose window has holes, and the
first samples of instruments that appear only after the segment start).
"""

import time

import numpy as np
from _common import init_qlib, parse

out, kw = parse()
init_qlib(kw["provider"])
from qlib.contrib.data.handler import Alpha158, Alpha360  # noqa: E402
from qlib.data.dataset import TSDatasetH  # noqa: E402
from qlib.data.dataset.processor import RobustZScoreNorm  # noqa: E402

infer = [
    {"class": "RobustZScoreNorm", "kwargs": {"fields_group": "feature", "clip_outlier": True}},
    {"class": "Fillna", "kwargs": {"fields_group": "feature"}},
]
if kw.get("filter_cols"):
    infer.insert(0, {"class": "FilterCol", "kwargs": {"col_list": kw["filter_cols"]}})
learn = [{"class": "DropnaLabel"}, {"class": "CSRankNorm", "kwargs": {"fields_group": "label"}}]
t0 = time.perf_counter()
handler = {"alpha158": Alpha158, "alpha360": Alpha360}[kw["set"]](
    instruments=kw["market"],
    start_time=kw["start"],
    end_time=kw["end"],
    fit_start_time=kw["fit_start"],
    fit_end_time=kw["fit_end"],
    infer_processors=infer,
    learn_processors=learn,
)
print(f"qlib handler: {time.perf_counter() - t0:.1f}s", flush=True)

res: dict[str, np.ndarray] = {}
norm = next(p for p in handler.infer_processors if isinstance(p, RobustZScoreNorm))
res["norm_median"] = np.asarray(norm.mean_train)
res["norm_scale"] = np.asarray(norm.std_train)
rng = np.random.default_rng(0)
for key in ("infer", "learn"):
    df = handler.fetch(col_set=["feature", "label"], data_key=key)
    res[f"{key}_columns"] = np.array([c[1] for c in df.columns])
    values = df.to_numpy(np.float64)
    res[f"{key}_count"] = np.isfinite(values).sum(axis=0)
    res[f"{key}_sum"] = np.nansum(values, axis=0)
    res[f"{key}_sumsq"] = np.nansum(values**2, axis=0)
    pos = np.sort(rng.choice(len(df), kw["n_rows"], replace=False))
    res[f"{key}_pos"] = pos
    res[f"{key}_rows"] = values[pos]
    res[f"{key}_datetime"] = df.index.get_level_values("datetime").to_numpy("datetime64[ns]")
    res[f"{key}_instrument"] = df.index.get_level_values("instrument").to_numpy(str)
    if key == "learn":
        res["learn_label"] = values[:, -1]
    del df, values

if kw.get("step_len"):
    step = kw["step_len"]
    ds = TSDatasetH(handler=handler, segments=kw["segments"], step_len=step)
    for seg, key in (("train", "learn"), ("test", "infer")):
        sampler = ds.prepare(seg, col_set=["feature", "label"], data_key=key)
        sampler.config(fillna_type="ffill+bfill")
        index = sampler.get_index()
        res[f"ts_{seg}_datetime"] = index.get_level_values(0).to_numpy("datetime64[ns]")
        res[f"ts_{seg}_instrument"] = index.get_level_values(1).to_numpy(str)
        rows, cols = sampler.idx_map[:, 0].astype(np.int64), sampler.idx_map[:, 1].astype(np.int64)
        grid = sampler.idx_arr
        lags = rows[:, None] - np.arange(step)[None, ::-1]
        missing = np.isnan(grid[np.maximum(lags, 0), cols[:, None]])
        gap = (lags < 0).any(axis=1) | missing.any(axis=1)
        first_row = np.argmax(~np.isnan(grid), axis=0)
        late = np.flatnonzero(first_row[cols] > step)
        late_insts = np.unique(cols[late])[:3]
        chosen = [
            rng.choice(len(sampler), 200, replace=False),
            rng.choice(np.flatnonzero(gap), min(200, int(gap.sum())), replace=False),
            *(np.flatnonzero(cols == c)[:25] for c in late_insts),
        ]
        pos = np.unique(np.concatenate(chosen))
        res[f"ts_{seg}_pos"] = pos
        res[f"ts_{seg}_windows"] = np.asarray(sampler[pos], dtype=np.float64)
with open(out, "wb") as f:  # a file object: savez would append .npz to the name
    np.savez_compressed(f, **res)
