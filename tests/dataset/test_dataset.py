"""DatasetH / TSDatasetH: segments, data keys, raw labels and errors that name the setting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alstm.dataset import DataHandler, DatasetH, TSDatasetH, build_processors
from tests.dataset.conftest import random_frame

FIT = ("2019-06-01", "2019-06-30")
SEGMENTS = {
    "train": ("2019-06-01", "2019-06-30"),
    "valid": ("2019-07-01", "2019-07-10"),
    "test": ("2019-07-11", "2019-07-31"),
}


@pytest.fixture(scope="module")
def handler() -> DataHandler:
    feature = {"fields_group": "feature"}
    infer = [{"name": "RobustZScoreNorm", "kwargs": feature}, {"name": "Fillna", "kwargs": feature}]
    learn = ["DropnaLabel", {"name": "CSRankNorm", "kwargs": {"fields_group": "label"}}]
    procs = build_processors(infer, *FIT), build_processors(learn, *FIT)
    return DataHandler(*procs).fit_process(random_frame(11))


def dates_of(index: pd.MultiIndex) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(index.get_level_values("datetime"))


def test_prepare_returns_the_segments_rows(handler: DataHandler) -> None:
    ds = DatasetH(handler, SEGMENTS)
    train = ds.prepare("train", col_set="feature", data_key="learn")
    assert list(train.columns) == ["f0", "f1", "f2"]
    assert dates_of(train.index).max() <= pd.Timestamp("2019-06-30")
    valid, test = ds.prepare(["valid", "test"], col_set=["feature", "label"])
    assert dates_of(valid.index).min() >= pd.Timestamp("2019-07-01")
    assert test[("label", "LABEL0")].isna().any()  # infer data keeps rows without a label


def test_samples_use_learn_for_train_and_infer_for_test(handler: DataHandler) -> None:
    ds = DatasetH(handler, SEGMENTS)
    learn_rows = len(ds.prepare("train", data_key="learn"))
    assert len(ds.samples("train")) == learn_rows < len(ds.prepare("train", data_key="infer"))
    test = ds.samples("test")
    assert test.index.equals(ds.prepare("test").index)  # stored (datetime, instrument) order
    x, y = test.gather(np.arange(4))
    assert x.shape == (4, 1, 3) and ds.d_feat == ds.n_features == 3
    np.testing.assert_array_equal(y, ds.prepare("test", col_set="label")["LABEL0"][:4])


def test_raw_label_is_unprocessed(handler: DataHandler) -> None:
    ds = DatasetH(handler, SEGMENTS)
    raw = ds.raw_label("train")
    assert raw.name == "LABEL0" and raw.isna().any()
    assert raw.index.equals(ds.prepare("train", data_key="infer").index)
    np.testing.assert_array_equal(raw, ds.prepare("train", col_set="label")["LABEL0"])


def test_ts_samples_reach_back_step_len_dates(handler: DataHandler) -> None:
    ds = TSDatasetH(handler, SEGMENTS, step_len=5)
    valid = ds.samples("valid")
    assert dates_of(valid.index).min() >= pd.Timestamp("2019-07-01")
    assert valid.d_feat == 3 and valid.step_len == 5
    # instrument-major order
    insts = valid.index.get_level_values("instrument")
    assert insts.is_monotonic_increasing
    # a sample on the first valid date whose window has no hole: its first 4 steps are the
    # instrument's last 4 train rows of the learn data
    lags = valid.sample_date[:, None] - np.arange(4, -1, -1)
    full = valid.exists[valid.sample_inst[:, None], lags].all(axis=1)
    pos = int(np.flatnonzero(full & (dates_of(valid.index) == dates_of(valid.index).min()))[0])
    x, _ = valid.gather(np.array([pos]))
    train = ds.prepare("train", col_set="feature", data_key="learn")
    history = train.xs(valid.index[pos][1], level="instrument").to_numpy()[-4:]
    np.testing.assert_array_equal(x[0, :-1], history)


def test_ts_test_samples_keep_rows_without_label(handler: DataHandler) -> None:
    ds = TSDatasetH(handler, SEGMENTS, step_len=3)
    test = ds.samples("test")
    assert len(test) == len(ds.prepare("test"))
    assert np.isnan(test.gather(np.arange(len(test)))[1]).any()


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ({"test": ("2021-01-01", "2021-06-30")}, r"'test'=2021-01-01 .. 2021-06-30 has no data"),
        ({"test": ("2019-06-08", "2019-06-09")}, r"has no data rows; the data spans 2019-06-03"),
        ({"test": ("2019-07-10", "2019-07-01")}, "start 2019-07-10 is after end 2019-07-01"),
        ({"test": ("soon", "later")}, r"segment 'test'=\('soon', 'later'\): expected"),
    ],
)
def test_bad_segments_are_named(handler: DataHandler, segments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DatasetH(handler, segments)


def test_bad_settings_are_named(handler: DataHandler) -> None:
    with pytest.raises(ValueError, match="step_len=0: must be an integer >= 1"):
        TSDatasetH(handler, SEGMENTS, step_len=0)
    with pytest.raises(ValueError, match="fillna_type='zero'"):
        TSDatasetH(handler, SEGMENTS, fillna_type="zero")
    with pytest.raises(ValueError, match="d_feat=2: must be >= 1 and divide the 3"):
        DatasetH(handler, SEGMENTS, d_feat=2)
    with pytest.raises(ValueError, match=r"unknown segment 'tset'; segments: \['train'"):
        DatasetH(handler, SEGMENTS).samples("tset")
