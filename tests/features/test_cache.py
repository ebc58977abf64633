from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from alstm.data.provider import QlibDataDir
from alstm.data.writer import write_qlib_dir
from alstm.features import factors
from alstm.features.cache import load_frame, save_frame
from tests.features.conftest import make_panel

EXPRS = {"MA5": "Mean($close, 5)/$close", "LABEL0": "Ref($close, -2)/Ref($close, -1) - 1"}


def test_save_load_round_trip(tmp_path: Path) -> None:
    idx = pd.MultiIndex.from_product(
        [pd.bdate_range("2020-01-01", periods=3), ["B", "A"]], names=["datetime", "instrument"]
    )
    frame = pd.DataFrame({"x": np.arange(6, dtype=np.float32), "y": np.nan}, index=idx)
    frame["y"] = frame["y"].astype(np.float32)
    save_frame(tmp_path / "entry", frame, {"note": "t"})
    back = load_frame(tmp_path / "entry")
    pd.testing.assert_frame_equal(back, frame)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_load_factors_uses_cache_and_invalidates(tmp_path: Path, monkeypatch) -> None:
    root = write_qlib_dir(make_panel(), tmp_path / "data")
    data = QlibDataDir(root)
    calls = []
    real = factors.compute_factors

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(factors, "compute_factors", counting)
    kw = {"start": "2020-02-03", "end": "2020-06-01", "market": "mkt", "cache_dir": tmp_path / "c"}
    a = factors.load_factors(data, EXPRS, **kw)
    b = factors.load_factors(QlibDataDir(root), EXPRS, **kw)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(a, b)
    factors.load_factors(data, {"MA5": EXPRS["MA5"]}, **kw)  # other expressions → new entry
    factors.load_factors(data, EXPRS, **{**kw, "end": "2020-05-01"})  # other span → new entry
    assert len(calls) == 3
    factors.load_factors(data, EXPRS, **{**kw, "cache_dir": None})  # bypass
    assert len(calls) == 4
