"""risk_analysis: Qlib's formulas on hand-computed series."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alstm.evaluate import annualization, risk_analysis

R = pd.Series([0.01, -0.02, 0.03, -0.01])


def test_sum_mode_by_hand() -> None:
    out = risk_analysis(R)
    mean = 0.0025
    std = math.sqrt(sum((x - mean) ** 2 for x in R) / 3)
    assert out["mean"] == pytest.approx(mean)
    assert out["std"] == pytest.approx(std)
    assert out["annualized_return"] == pytest.approx(mean * 238)
    assert out["information_ratio"] == pytest.approx(mean / std * math.sqrt(238))
    # cumsum 0.01, -0.01, 0.02, 0.01; running max 0.01, 0.01, 0.02, 0.02 → worst gap −0.02.
    assert out["max_drawdown"] == pytest.approx(-0.02)
    assert list(out) == ["mean", "std", "annualized_return", "information_ratio", "max_drawdown"]


def test_product_mode_by_hand() -> None:
    out = risk_analysis(R, mode="product")
    curve = np.cumprod(1 + R.to_numpy())
    assert out["mean"] == pytest.approx(curve[-1] ** (1 / 4) - 1)
    assert out["std"] == pytest.approx(np.log1p(R).std(ddof=1))
    assert out["annualized_return"] == pytest.approx(curve[-1] ** (238 / 4) - 1)
    assert out["max_drawdown"] == pytest.approx((curve / np.maximum.accumulate(curve) - 1).min())


@pytest.mark.parametrize(
    ("freq", "n"), [("day", 238), ("1d", 238), ("week", 50), ("month", 12), ("5min", 240 * 238 / 5)]
)
def test_annualization(freq: str, n: float) -> None:
    assert annualization(freq) == n
    assert risk_analysis(R, freq)["annualized_return"] == pytest.approx(0.0025 * n)


def test_explicit_n_overrides_freq() -> None:
    assert risk_analysis(R, n=252)["annualized_return"] == pytest.approx(0.0025 * 252)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="frequency"):
        risk_analysis(R, "fortnight")
    with pytest.raises(ValueError, match="mode"):
        risk_analysis(R, mode="log")  # type: ignore[arg-type]
