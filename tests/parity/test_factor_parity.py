"""Alpha158, Alpha360 and the label equal Qlib's on CSI300 2008-01-01 .. 2020-08-01."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alstm.data.provider import QlibDataDir
from alstm.features.factors import LABEL, compute_factors, factor_set

pytestmark = pytest.mark.parity

SPAN = {"market": "csi300", "start": "2008-01-01", "end": "2020-08-01"}


def _column_report(ours: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    """Per column: NaN-pattern mismatches and the worst |diff| / (1 + |ref|)."""
    rows = []
    for col in ref.columns:
        a = ours[col].to_numpy(np.float64)
        b = ref[col].to_numpy(np.float64)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        both = ~nan_a & ~nan_b
        with np.errstate(invalid="ignore"):
            same_inf = both & np.isinf(b) & (a == b)
            rel = np.abs(a - b) / (1 + np.abs(b))
        rel = np.where(same_inf, 0.0, rel)
        worst = float(np.nanmax(rel[both])) if both.any() else 0.0
        rows.append({"column": col, "nan_mismatch": int((nan_a != nan_b).sum()), "max_rel": worst})
    return pd.DataFrame(rows).set_index("column")


@pytest.mark.parametrize("name", ["alpha158", "alpha360"])
def test_factors_equal_qlib(
    name: str, csi300_dir: Path, qlib_ref: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ref = pd.read_parquet(qlib_ref("factors", provider=str(csi300_dir), set=name, **SPAN))
    exprs = {**factor_set(name), **LABEL}
    ours = compute_factors(QlibDataDir(csi300_dir), exprs, SPAN["start"], SPAN["end"], "csi300")
    assert list(ours.columns) == list(ref.columns)
    assert ours.index.equals(ref.index)
    assert all(ours.dtypes == np.float32)
    report = _column_report(ours, ref)
    with capsys.disabled():
        print(f"\n{name}: worst columns (|diff| / (1 + |qlib|), NaN-pattern mismatches)")
        print(report.sort_values(["nan_mismatch", "max_rel"], ascending=False).head(8))
    assert report["nan_mismatch"].sum() == 0, report[report["nan_mismatch"] > 0]
    assert (report["max_rel"] <= 1e-5).all(), report[report["max_rel"] > 1e-5]
