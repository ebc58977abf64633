"""Each processor against hand-computed answers, plus the contract every registered one keeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alstm.dataset import (
    PROCESSORS,
    Frame,
    Processor,
    load_processors,
    make_processor,
    register_processor,
    save_processors,
)
from alstm.dataset.processors import RANK_TO_STD
from tests.dataset.conftest import DAYS, frame_from, random_frame

NAN, INF = np.nan, np.inf
FIT = {"fit_start_time": "2020-01-01", "fit_end_time": "2020-01-02"}  # d0 .. d1


def column(frame: Frame, group: str = "feature", col: int = 0) -> list[float]:
    return frame.values[group][:, col].astype(np.float64).tolist()


def one_column(values: list[list[float]], labels: list[list[float]] | None = None) -> Frame:
    """Feature ``f0`` (and label) per day: ``values[t]`` lists instruments A, B, C … of day t."""
    recs = []
    for t, day in enumerate(values):
        for j, v in enumerate(day):
            y = labels[t][j] if labels else 0.0
            recs.append((DAYS[t], "ABCDEFG"[j], [v], y))
    return frame_from(recs)


# --- global normalizers ----------------------------------------------------------------------


def test_robust_zscore_known_answer() -> None:
    frame = one_column([[1, 2, NAN], [3, 4, 100], [5, INF, -INF]])
    proc = make_processor("RobustZScoreNorm", fields_group="feature", **FIT).fit(frame)
    # fit rows d0-d1: median 3, MAD median(2, 1, 0, 1, 97) = 1 → scale (1 + 1e-12)·1.4826
    assert proc.median_.tolist() == [3.0]
    assert proc.scale_.tolist() == [np.float32(1.4826)]
    s = np.float32(1.4826)
    want = [-2 / s, -1 / s, NAN, 0, 1 / s, 3, 2 / s, 3, -3]
    np.testing.assert_allclose(column(proc.transform(frame)), want, rtol=1e-6)
    raw = make_processor("RobustZScoreNorm", fields_group="feature", clip_outlier=False, **FIT)
    out = column(raw.fit(frame).transform(frame))
    assert out[5] == pytest.approx(97 / s, rel=1e-6) and out[7] == INF and out[8] == -INF


def test_robust_zscore_equals_numpy_formula() -> None:
    frame = random_frame(1)
    fit = {"fit_start_time": "2019-06-01", "fit_end_time": "2019-07-10"}
    proc = make_processor("RobustZScoreNorm", fields_group="feature", **fit).fit(frame)
    x = frame.values["feature"]
    fx = x[frame.rows_between(fit["fit_start_time"], fit["fit_end_time"])]
    med = np.nanmedian(fx, axis=0)
    scale = np.nanmedian(np.abs(fx - med), axis=0)
    scale += 1e-12
    scale *= 1.4826
    np.testing.assert_array_equal(proc.median_, med)
    np.testing.assert_array_equal(proc.scale_, scale)
    out = proc.transform(frame).values["feature"]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.clip((x - med) / scale, -3, 3))


def test_zscore_and_minmax_leave_constant_columns() -> None:
    recs = [(DAYS[t], "X", [float(v), 7.0], 0.0) for t, v in enumerate([0, 5, 10])]
    frame = frame_from(recs)
    fit = {"fit_start_time": DAYS[0], "fit_end_time": DAYS[2]}
    z = make_processor("ZScoreNorm", fields_group="feature", **fit).fit(frame).transform(frame)
    std = np.std([0, 5, 10])
    np.testing.assert_allclose(column(z), [-5 / std, 0, 5 / std], rtol=1e-6)
    assert column(z, col=1) == [7.0, 7.0, 7.0]
    m = make_processor("MinMaxNorm", fields_group="feature", **fit).fit(frame).transform(frame)
    assert column(m) == [0.0, 0.5, 1.0] and column(m, col=1) == [7.0, 7.0, 7.0]


def test_fit_span_without_rows_names_the_setting() -> None:
    frame = one_column([[1, 2]])
    proc = make_processor("ZScoreNorm", fit_start_time="2030-01-01", fit_end_time="2030-12-31")
    with pytest.raises(
        ValueError, match=r"fit_start_time='2030-01-01'.*2020-01-01 \.\. 2020-01-01"
    ):
        proc.fit(frame)


def test_unfitted_processor_says_so() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        make_processor("RobustZScoreNorm", **FIT).transform(one_column([[1.0]]))


# --- cross-sectional -------------------------------------------------------------------------


def test_cs_rank_norm_ties_nan_single_and_empty_days() -> None:
    frame = one_column([[1, 2, 2, NAN], [7], [NAN, NAN]])
    out = column(make_processor("CSRankNorm", fields_group="feature").transform(frame))
    ranks = [1 / 3, 2.5 / 3, 2.5 / 3, NAN, 1.0, NAN, NAN]  # average ties, NaN kept, n = non-NaN
    np.testing.assert_allclose(out, [(r - 0.5) * RANK_TO_STD for r in ranks])


def test_cs_rank_norm_equals_pandas_groupby_rank() -> None:
    frame = random_frame(2)
    out = make_processor("CSRankNorm").transform(frame)
    df = frame.to_frame()
    want = (df.groupby(level="datetime").rank(pct=True) - 0.5) * 3.46
    np.testing.assert_array_equal(out.values["feature"], want.iloc[:, :3].to_numpy())
    np.testing.assert_array_equal(out.values["label"][:, 0], want["LABEL0"].to_numpy())
    assert out.values["label"].dtype == np.float64


def test_cs_zscore_norm_methods() -> None:
    frame = one_column([[1, 2, 3], [5], [1, 2, 3, 100]])
    z = column(make_processor("CSZScoreNorm", fields_group="feature").transform(frame))
    np.testing.assert_allclose(z[:4], [-1, 0, 1, NAN])  # one instrument: std is NaN
    r = make_processor("CSZScoreNorm", fields_group="feature", method="robust").transform(frame)
    s = 1.4826  # day 2: median 2.5, MAD median(1.5, 0.5, 0.5, 97.5) = 1.0
    np.testing.assert_allclose(column(r)[4:], [-1.5 / s, -0.5 / s, 0.5 / s, 3], rtol=1e-6)
    with pytest.raises(ValueError, match="method='mad'"):
        make_processor("CSZScoreNorm", method="mad").transform(frame)


def test_cs_zscore_equals_pandas() -> None:
    frame = random_frame(3)
    out = make_processor("CSZScoreNorm", fields_group="feature").transform(frame)
    df = frame.to_frame("feature").astype(np.float64)
    g = df.groupby(level="datetime")
    want = (df - g.transform("mean")) / g.transform("std")
    np.testing.assert_allclose(out.values["feature"], want.to_numpy(np.float32), rtol=1e-6)


# --- elementwise and filters -----------------------------------------------------------------


def test_fillna_only_touches_its_group() -> None:
    frame = one_column([[NAN, 1]], labels=[[NAN, 2]])
    out = make_processor("Fillna", fields_group="feature").transform(frame)
    assert column(out) == [0.0, 1.0]
    assert np.isnan(column(out, "label")[0])
    assert column(make_processor("Fillna", fill_value=-1).transform(frame), "label")[0] == -1


def test_process_inf_uses_the_days_mean() -> None:
    frame = one_column([[1, INF, 3, NAN], [INF, -INF]], labels=[[INF, 1, 2, 3], [0, 0]])
    out = make_processor("ProcessInf").transform(frame)
    np.testing.assert_array_equal(column(out), [1, 2, 3, NAN, NAN, NAN])
    assert column(out, "label")[:4] == [2.0, 1.0, 2.0, 3.0]  # every group, mean of 1, 2, 3


def test_tanh_process_skips_label_columns() -> None:
    frame = one_column([[0.0, 1.0, 3.0]], labels=[[5.0, 5.0, 5.0]])
    out = make_processor("TanhProcess").transform(frame)
    np.testing.assert_allclose(column(out), np.tanh([-1.0, 0.0, 2.0]), rtol=1e-6)
    assert column(out, "label") == [5.0, 5.0, 5.0]


def test_dropna_processors() -> None:
    frame = one_column([[NAN, 1, 2]], labels=[[0, NAN, 0]])
    kept = make_processor("DropnaLabel").transform(frame)
    assert kept.index.get_level_values("instrument").tolist() == ["A", "C"]
    feat = make_processor("DropnaFeature").transform(frame)
    assert feat.index.get_level_values("instrument").tolist() == ["B", "C"]
    both = make_processor("DropnaProcessor").transform(frame)
    assert both.index.get_level_values("instrument").tolist() == ["C"]
    assert not PROCESSORS["DropnaLabel"].for_infer and PROCESSORS["DropnaFeature"].for_infer


def test_filter_col_keeps_native_order_and_names_missing_columns() -> None:
    recs = [(DAYS[0], "X", [1.0, 2.0, 3.0], 0.0)]
    frame = frame_from(recs).replace({}, {"feature": ("c", "a", "b")})
    out = make_processor("FilterCol", col_list=["b", "c"]).transform(frame)
    assert out.columns["feature"] == ("c", "b") and out.values["feature"].tolist() == [[1.0, 3.0]]
    assert out.columns["label"] == ("LABEL0",)
    with pytest.raises(ValueError, match=r"\['zz'\].*available: \['c', 'a', 'b'\]"):
        make_processor("FilterCol", col_list=["a", "zz"]).transform(frame)


# --- registry and contract -------------------------------------------------------------------


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown processor 'Nope'; known: \['CSRankNorm'"):
        make_processor("Nope")


def test_registering_a_taken_name_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_processor("Fillna")(type("X", (Processor,), {}))


CONTRACT_KWARGS = {
    "FilterCol": {"col_list": ["f2", "f0"]},
    "MinMaxNorm": {"fit_start_time": "2019-06-01", "fit_end_time": "2019-07-10"},
    "ZScoreNorm": {"fit_start_time": "2019-06-01", "fit_end_time": "2019-07-10"},
    "RobustZScoreNorm": {"fit_start_time": "2019-06-01", "fit_end_time": "2019-07-10"},
}


def _same(a: Frame, b: Frame) -> bool:
    return a.index.equals(b.index) and all(
        a.columns[g] == b.columns[g] and np.array_equal(a.values[g], b.values[g], equal_nan=True)
        for g in a.values
    )


@pytest.mark.parametrize("name", sorted(PROCESSORS))
def test_processor_contract(name: str, tmp_path: Path) -> None:
    frame = random_frame(4)
    proc = make_processor(name, **CONTRACT_KWARGS.get(name, {}))
    before = {g: v.copy() for g, v in frame.values.items()}
    out = proc.fit(frame).transform(frame)
    # the input is never written into
    assert all(np.array_equal(before[g], frame.values[g], equal_nan=True) for g in before)
    # refit gives the same result; parameters round-trip through repr/get_params
    again = make_processor(name, **proc.get_params())
    assert repr(again) == repr(proc)
    assert _same(again.fit(frame).transform(frame), out)
    # the fitted state round-trips through JSON + NPZ
    save_processors(tmp_path, [proc])
    (loaded,) = load_processors(tmp_path)
    assert _same(loaded.transform(frame), out)
    assert isinstance(out.index, pd.MultiIndex) and len(out) <= len(frame)
