"""DataHandler: raw → infer (fit in order on the fit span) → learn on a copy of infer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alstm.dataset import DataHandler, Frame, build_processors
from alstm.dataset.processors import RANK_TO_STD
from tests.dataset.conftest import random_frame

FIT = ("2019-06-01", "2019-07-05")
INFER = [
    {"name": "RobustZScoreNorm", "kwargs": {"fields_group": "feature", "clip_outlier": True}},
    {"name": "Fillna", "kwargs": {"fields_group": "feature"}},
]
LEARN = ["DropnaLabel", {"name": "CSRankNorm", "kwargs": {"fields_group": "label"}}]


def fitted(raw: Frame, **kwargs: bool) -> DataHandler:
    procs = build_processors(INFER, *FIT), build_processors(LEARN, *FIT)
    return DataHandler(*procs, **kwargs).fit_process(raw)


def test_learn_and_infer_flow() -> None:
    raw = random_frame(5)
    h = fitted(raw)
    infer, learn = h.frame("infer"), h.frame("learn")
    # I: every row, features normalized with stats of the fit span only, NaN → 0, raw label
    assert infer.index.equals(raw.index)
    x = raw.values["feature"]
    fx = x[raw.rows_between(*FIT)]
    med = np.nanmedian(fx, axis=0)
    scale = (np.nanmedian(np.abs(fx - med), axis=0) + np.float32(1e-12)) * np.float32(1.4826)
    want = np.nan_to_num(np.clip((x - med) / scale, -3, 3), nan=0.0)
    np.testing.assert_allclose(infer.values["feature"], want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(infer.values["label"], raw.values["label"])
    # L: I's rows with a label, same features, label ranked per day
    keep = ~np.isnan(raw.values["label"][:, 0])
    assert learn.index.equals(raw.index[keep])
    np.testing.assert_array_equal(learn.values["feature"], infer.values["feature"][keep])
    day = learn.dates == learn.dates[0]
    ranks = raw.to_frame("label")[keep][day]["LABEL0"].rank(pct=True).to_numpy()
    np.testing.assert_allclose(learn.values["label"][day, 0], (ranks - 0.5) * RANK_TO_STD)


def test_fit_ignores_rows_after_the_fit_span() -> None:
    raw = random_frame(6)
    late = raw.rows_between("2019-07-06", None)
    changed = raw.values["feature"].copy()
    changed[late] *= 100
    other = raw.replace({"feature": changed})
    a, b = fitted(raw), fitted(other)
    np.testing.assert_array_equal(a.infer_processors[0].median_, b.infer_processors[0].median_)
    early = raw.rows_between(None, "2019-07-05")
    np.testing.assert_array_equal(
        a.frame("infer").values["feature"][early], b.frame("infer").values["feature"][early]
    )


def test_saved_processors_rebuild_the_same_data(tmp_path: Path) -> None:
    raw = random_frame(7)
    h = fitted(raw)
    h.save(tmp_path)
    again = DataHandler.load(tmp_path).process(raw)
    for key in ("infer", "learn"):
        for g in ("feature", "label"):
            np.testing.assert_array_equal(again.frame(key).values[g], h.frame(key).values[g])


def test_fetch_slices_dates_and_column_sets() -> None:
    h = fitted(random_frame(8), keep_raw_features=True)
    df = h.fetch("2019-06-10", "2019-06-12", col_set=["feature", "label"], data_key="learn")
    assert df.index.get_level_values("datetime").unique().size == 3
    assert df.columns.get_level_values(0).unique().tolist() == ["feature", "label"]
    assert h.fetch(data_key="raw").shape[1] == 4


def test_raw_features_are_dropped_unless_kept() -> None:
    h = fitted(random_frame(8))
    assert list(h.fetch(col_set="label", data_key="raw").columns) == ["LABEL0"]
    with pytest.raises(ValueError, match="keep_raw_features"):
        h.fetch(data_key="raw")


def test_bad_configs_are_named() -> None:
    with pytest.raises(ValueError, match="learn processors only"):
        DataHandler(build_processors(["DropnaLabel"], *FIT)).fit_process(random_frame(0))
    with pytest.raises(ValueError, match="unknown processor 'Robust'"):
        build_processors(["Robust"], *FIT)
    with pytest.raises(ValueError, match="needs the handler's fit_start_time"):
        build_processors(INFER, None, None)
    with pytest.raises(ValueError, match="data_key='test'"):
        fitted(random_frame(0)).frame("test")
    with pytest.raises(RuntimeError, match="fit_process"):
        DataHandler().frame("infer")
