"""The benchmark datasets end to end on a small synthetic market."""

from __future__ import annotations

import numpy as np
import pytest

from alstm.data.provider import QlibDataDir
from alstm.data.synth import write_synth
from alstm.dataset import DatasetH, TSDatasetH
from alstm.dataset.presets import benchmark_dataset, benchmark_processors

SEGMENTS = {
    "train": ("2019-01-01", "2019-08-31"),
    "valid": ("2019-09-01", "2019-10-31"),
    "test": ("2019-11-01", "2019-12-31"),
}
KW = {"market": "syn20", "span": ("2019-01-01", "2019-12-31"), "segments": SEGMENTS}


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> QlibDataDir:
    dst = tmp_path_factory.mktemp("synth") / "market"
    write_synth(dst, seed=3, n_instruments=30, n_members=20, market="syn20",
                start="2018-09-01", end="2019-12-31")  # fmt: skip
    return QlibDataDir(dst)


def test_alpha158_is_a_ts_dataset_of_the_20_columns(synth: QlibDataDir) -> None:
    ds = benchmark_dataset(synth, "alpha158", fit_span=("2019-01-01", "2019-08-31"), **KW)
    assert isinstance(ds, TSDatasetH) and ds.step_len == 20 and ds.d_feat == 20
    features = ds.handler.frame("infer").columns["feature"]
    assert features[:4] == ("KLEN", "KLOW", "ROC60", "STD5") and features[-1] == "WVMA60"
    train = ds.samples("train")
    x, y = train.gather(np.random.default_rng(0).permutation(len(train))[:800])
    assert x.shape == (800, 20, 20) and x.dtype == np.float32 and not np.isnan(x).any()
    assert np.abs(x).max() <= 3 and not np.isnan(y).any()  # clipped features, DropnaLabel
    raw = ds.raw_label("test")
    assert len(ds.samples("test")) == len(raw)


def test_alpha360_is_flat_rows_served_as_60_steps(synth: QlibDataDir) -> None:
    ds = benchmark_dataset(synth, "alpha360", fit_span=("2019-01-01", "2019-08-31"), **KW)
    assert type(ds) is DatasetH and ds.d_feat == 6
    valid = ds.samples("valid")
    x, _ = valid.gather(np.arange(3))
    assert x.shape == (3, 60, 6) and valid.step_len == 60
    row = ds.prepare("valid", col_set="feature", data_key="learn").iloc[0]
    assert x[0, 0, 0] == row["CLOSE59"] and x[0, 59, 5] == row["VOLUME0"]


def test_unknown_benchmark_is_named(synth: QlibDataDir) -> None:
    with pytest.raises(ValueError, match=r"unknown benchmark 'alpha101'; known"):
        benchmark_processors("alpha101")
    with pytest.raises(ValueError, match="'alpha101'"):
        benchmark_dataset(synth, "alpha101", **KW)
