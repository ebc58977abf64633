"""The benchmark handlers' learn/infer data and TS windows equal Qlib's (CSI300 2008 .. 2020-08).

Qlib side: ``qlib.contrib.data.handler.Alpha158/Alpha360`` with the benchmark processors, and
``TSDatasetH(step_len=20)`` samplers (fillna "ffill+bfill") on L for train and I for test; the
script keeps checksums, a random sample of rows and the windows of chosen samples.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from alstm.data.provider import QlibDataDir
from alstm.dataset import DatasetH, Frame
from alstm.dataset.presets import (
    ALPHA158_ALSTM_COLUMNS,
    FIT_SPAN,
    MARKET,
    SEGMENTS,
    SPAN,
    STEP_LEN,
    benchmark_dataset,
)

pytestmark = pytest.mark.parity

ARGS = {
    "market": MARKET,
    "start": SPAN[0],
    "end": SPAN[1],
    "fit_start": FIT_SPAN[0],
    "fit_end": FIT_SPAN[1],
}
REF_ARGS = {
    "alpha158": {
        "filter_cols": list(ALPHA158_ALSTM_COLUMNS),
        "step_len": STEP_LEN,
        "segments": SEGMENTS,
        "n_rows": 20000,
    },
    "alpha360": {"n_rows": 5000},
}


@cache
def _dataset(name: str, data_dir: Path) -> DatasetH:
    return benchmark_dataset(QlibDataDir(data_dir), name)


def _reference(name: str, csi300_dir: Path, qlib_ref: Callable[..., Path]) -> dict:
    path = qlib_ref(
        "dataset_handler", ".npz", provider=str(csi300_dir), set=name, **ARGS, **REF_ARGS[name]
    )
    with np.load(path, allow_pickle=False) as z:
        return dict(z)


def _values(frame: Frame) -> np.ndarray:
    """float64 ``[rows, features + label]`` as Qlib's ``np.array(df)`` lays it out."""
    return np.concatenate(
        [frame.values["feature"].astype(np.float64), frame.values["label"].astype(np.float64)],
        axis=1,
    )


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Worst |a − b| where both are numbers; asserts the NaN patterns are equal."""
    assert (np.isnan(a) == np.isnan(b)).all(), "NaN patterns differ"
    both = ~np.isnan(a)
    return float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0


@pytest.mark.parametrize("name", ["alpha158", "alpha360"])
def test_processed_data_equals_qlib(
    name: str,
    csi300_dir: Path,
    qlib_ref: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = _reference(name, csi300_dir, qlib_ref)
    handler = _dataset(name, csi300_dir).handler
    norm = next(p for p in handler.infer_processors if p.name == "RobustZScoreNorm")
    np.testing.assert_array_equal(norm.median_, ref["norm_median"])
    np.testing.assert_array_equal(norm.scale_, ref["norm_scale"])
    report = []
    for key in ("infer", "learn"):
        frame = handler.frame(key)
        assert [*frame.columns["feature"], *frame.columns["label"]] == list(ref[f"{key}_columns"])
        np.testing.assert_array_equal(frame.dates, ref[f"{key}_datetime"])
        insts = frame.index.get_level_values("instrument").to_numpy(str)
        np.testing.assert_array_equal(insts, ref[f"{key}_instrument"])
        values = _values(frame)
        rows = values[ref[f"{key}_pos"]]
        feat = _max_diff(rows[:, :-1], ref[f"{key}_rows"][:, :-1])
        label = _max_diff(rows[:, -1], ref[f"{key}_rows"][:, -1])
        np.testing.assert_array_equal(np.isfinite(values).sum(axis=0), ref[f"{key}_count"])
        sums = np.nansum(values, axis=0)
        sum_rel = float(np.max(np.abs(sums - ref[f"{key}_sum"]) / (1 + np.abs(ref[f"{key}_sum"]))))
        sumsq = np.nansum(values**2, axis=0)
        sq_rel = float(np.max(np.abs(sumsq - ref[f"{key}_sumsq"]) / (1 + ref[f"{key}_sumsq"])))
        report.append((key, len(frame), feat, label, sum_rel, sq_rel))
        assert feat <= 1e-6 and label <= 1e-9
        assert sum_rel <= 1e-6 and sq_rel <= 1e-6
    full_label = _max_diff(_values(handler.frame("learn"))[:, -1], ref["learn_label"])
    with capsys.disabled():
        print(f"\n{name}: key, rows, max|Δ| sampled features, label, rel Δ column sums, sums of sq")
        for line in report:
            print("  ", *(f"{v:.3g}" if isinstance(v, float) else v for v in line))
        print(f"   learn label (all rows, CSRankNorm) max|Δ| {full_label:.3g}")
    assert full_label <= 1e-9


@pytest.mark.parametrize("segment", ["train", "test"])
def test_windows_equal_qlib_sampler(
    segment: str,
    csi300_dir: Path,
    qlib_ref: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = _reference("alpha158", csi300_dir, qlib_ref)
    samples = _dataset("alpha158", csi300_dir).samples(segment)
    dates = samples.index.get_level_values("datetime").to_numpy("datetime64[ns]")
    np.testing.assert_array_equal(dates, ref[f"ts_{segment}_datetime"])
    insts = samples.index.get_level_values("instrument").to_numpy(str)
    np.testing.assert_array_equal(insts, ref[f"ts_{segment}_instrument"])
    pos, windows = ref[f"ts_{segment}_pos"], ref[f"ts_{segment}_windows"]
    x, y = samples.gather(pos)
    assert x.shape == (len(pos), STEP_LEN, 20) and x.dtype == np.float32
    feat = _max_diff(x.astype(np.float64), windows[:, :, :-1])
    label = _max_diff(y.astype(np.float64), windows[:, -1, -1])
    # the chosen samples cover instruments that join after the segment start and windows with
    # holes (suspensions and, in L, rows dropped by DropnaLabel) inside the data
    first_seen = {i: dates[insts == i].min() for i in np.unique(insts[pos])}
    late = sum(first_seen[i] > np.datetime64(SEGMENTS[segment][0]) for i in first_seen)
    lags = samples.sample_date[pos, None] - np.arange(STEP_LEN)
    present = samples.exists[samples.sample_inst[pos, None], np.maximum(lags, 0)]
    holes = int((~present & (lags >= 0)).any(axis=1).sum())
    with capsys.disabled():
        print(
            f"\n{segment}: {len(samples)} samples; {len(pos)} windows compared ({late} instruments "
            f"joining mid-segment, {holes} windows with holes): max|Δ| features {feat:.3g}, "
            f"label {label:.3g}"
        )
    assert late >= 1 and holes >= 1
    assert feat <= 1e-6 and label <= 1e-6
