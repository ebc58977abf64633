"""Frame: splitting groups, date slices, pandas views."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alstm.dataset import Frame
from tests.dataset.conftest import DAYS


def test_from_frame_splits_groups_and_sorts(toy: Frame) -> None:
    df = toy.to_frame().iloc[::-1]  # unsorted input
    frame = Frame.from_frame(df)
    assert frame.columns == {"feature": ("f0", "f1"), "label": ("LABEL0",)}
    assert frame.index.is_monotonic_increasing
    assert frame.values["feature"].dtype == np.float32


def test_missing_label_column_is_named() -> None:
    df = pd.DataFrame(
        {"a": [1.0]},
        index=pd.MultiIndex.from_tuples([(DAYS[0], "X")], names=["datetime", "instrument"]),
    )
    with pytest.raises(ValueError, match=r"label column\(s\) \['LABEL0'\]"):
        Frame.from_frame(df)


def test_rows_between_and_day_bounds(toy: Frame) -> None:
    rows = toy.rows_between(DAYS[2], "2020-01-06")  # d2 .. d3
    assert set(toy.dates[rows]) == {np.datetime64(DAYS[2], "ns"), np.datetime64(DAYS[3], "ns")}
    assert toy.rows_between(None, None) == slice(0, len(toy))
    per_day = np.diff(toy.day_bounds)
    assert per_day.tolist() == [3, 3, 3, 2, 3, 4, 4, 4]  # B from d4, D out on d3-d4


def test_to_frame_column_sets(toy: Frame) -> None:
    assert list(toy.to_frame("feature").columns) == ["f0", "f1"]
    assert list(toy.to_frame("label").columns) == ["LABEL0"]
    both = toy.to_frame(["feature", "label"])
    assert list(both.columns) == [("feature", "f0"), ("feature", "f1"), ("label", "LABEL0")]
    assert list(toy.to_frame().columns) == ["f0", "f1", "LABEL0"]
    with pytest.raises(ValueError, match="col_set"):
        toy.to_frame(["features"])


def test_shape_mismatch_is_refused(toy: Frame) -> None:
    with pytest.raises(ValueError, match="group 'label'"):
        toy.replace({"label": np.zeros((3, 1))})
