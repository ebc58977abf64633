"""Qlib's D.features returns exactly alstm's raw fields; Qlib reads what alstm writes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alstm.data.provider import QlibDataDir
from alstm.data.synth import write_synth

pytestmark = pytest.mark.parity

FIELDS = ["open", "high", "low", "close", "volume", "amount", "vwap", "factor", "change"]


def _assert_same(ours: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert ours.index.equals(ref.index), "row sets differ"
    for f in ours.columns:
        a, b = ours[f].to_numpy(), ref[f].to_numpy()
        assert a.dtype == b.dtype == np.float32, f
        np.testing.assert_array_equal(a, b, err_msg=f"field {f}")


def test_raw_fields_equal_qlib(csi300_dir: Path, qlib_ref: Callable[..., Path]) -> None:
    kw = {"market": "csi300", "start": "2008-01-01", "end": "2020-08-01", "fields": FIELDS}
    ref = pd.read_parquet(qlib_ref("raw_fields", provider=str(csi300_dir), **kw))
    panel = QlibDataDir(csi300_dir).load(FIELDS, kw["start"], kw["end"], markets=["csi300"])
    ours = panel.to_frame("csi300")
    assert len(ours) == 917_924  # the row count the data README reports for Qlib
    _assert_same(ours, ref)


def test_qlib_reads_what_alstm_writes(qlib_ref: Callable[..., Path]) -> None:
    from tests.parity.conftest import CACHE

    dst = write_synth(CACHE.parent / "synth-parity", seed=0, overwrite=True)
    content = hashlib.sha256()
    for path in sorted(dst.rglob("*")):
        if path.is_file():
            content.update(path.relative_to(dst).as_posix().encode() + path.read_bytes())
    kw = {"market": "syn100", "start": "2014-01-01", "end": "2020-12-31", "fields": FIELDS}
    ref = pd.read_parquet(
        qlib_ref("raw_fields", provider=str(dst), content=content.hexdigest(), **kw)
    )
    panel = QlibDataDir(dst).load(FIELDS, kw["start"], kw["end"], markets=["syn100"])
    ours = panel.to_frame("syn100")
    assert len(ours) > 100_000
    _assert_same(ours, ref)
