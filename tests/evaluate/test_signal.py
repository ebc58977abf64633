"""Signal metrics: hand-computed cases and the equivalent pandas expressions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alstm.evaluate import (
    calc_ic,
    daily_ic,
    daily_rank_ic,
    ic_by_month,
    long_short_returns,
    pred_autocorr,
    quantile_returns,
    signal_metrics,
    topk_turnover,
)

DAYS = pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-06"])


def frame(values: dict[str, list[float]], days=DAYS[:1]) -> pd.DataFrame:
    """Columns of equal length over ``days × instruments S0..``, row-major by day."""
    n = len(next(iter(values.values()))) // len(days)
    idx = pd.MultiIndex.from_product(
        [days, [f"S{i}" for i in range(n)]], names=["datetime", "instrument"]
    )
    return pd.DataFrame(values, index=idx)


def random_frame(seed: int = 0, nan_share: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2020-01-01", periods=30)
    idx = pd.MultiIndex.from_product([days, [f"S{i:02d}" for i in range(25)]])
    idx = idx.set_names(["datetime", "instrument"])
    df = pd.DataFrame({"pred": rng.normal(size=len(idx)), "label": rng.normal(size=len(idx))}, idx)
    df["pred"] += 0.3 * df["label"]
    df = df.mask(rng.random(df.shape) < nan_share)
    df.iloc[:25, 1] = np.nan  # a day without any label
    df.iloc[25:49, 0] = np.nan  # a day with one valid pair
    return df.sample(frac=1.0, random_state=seed)  # row order must not matter


def test_perfect_and_reversed_signal() -> None:
    df = frame({"pred": [0.1, 0.5, 0.2, 0.9], "label": [1.0, 3.0, 2.0, 4.0]})
    assert daily_ic(df["pred"], df["label"]).iloc[0] < 1  # linear corr of a non-linear relation
    assert daily_rank_ic(df["pred"], df["label"]).iloc[0] == pytest.approx(1.0)
    assert daily_ic(df["label"], df["label"]).iloc[0] == pytest.approx(1.0)
    assert daily_ic(-df["label"], df["label"]).iloc[0] == pytest.approx(-1.0)
    assert daily_rank_ic(-df["pred"], df["label"]).iloc[0] == pytest.approx(-1.0)


def test_ic_by_hand_with_nan_pairs_dropped() -> None:
    # Valid pairs (1,1), (2,3), (3,2): dx = (−1, 0, 1), dy = (−1, 1, 0) → Σdxdy = 1,
    # Σdx² = Σdy² = 2 → r = 0.5 (the values are their own ranks, so Rank IC too).
    df = frame({"pred": [1.0, 2.0, 3.0, np.nan, 5.0], "label": [1.0, 3.0, 2.0, 7.0, np.nan]})
    assert daily_ic(df["pred"], df["label"]).iloc[0] == pytest.approx(0.5)
    assert daily_rank_ic(df["pred"], df["label"]).iloc[0] == pytest.approx(0.5)


def test_matches_pandas_groupby_corr() -> None:
    df = random_frame()
    g = df.groupby(level="datetime")
    want_ic = g.apply(lambda d: d["pred"].corr(d["label"]))
    # Spearman = Pearson of the ranks of the valid pairs (scipy is not a dependency).
    want_ric = g.apply(lambda d: d.dropna().rank()["pred"].corr(d.dropna().rank()["label"]))
    ic, ric = calc_ic(df["pred"], df["label"])
    pd.testing.assert_series_equal(ic, want_ic, check_names=False, atol=1e-12, rtol=0)
    pd.testing.assert_series_equal(ric, want_ric, check_names=False, atol=1e-12, rtol=0)
    assert ic.isna().sum() == 2  # no label / one pair


def test_signal_metrics_icir_is_mean_over_sample_std() -> None:
    df = random_frame(1)
    ic, ric = calc_ic(df["pred"], df["label"])
    m = signal_metrics(df["pred"], df["label"])
    assert list(m) == ["IC", "ICIR", "Rank IC", "Rank ICIR"]
    assert m["IC"] == pytest.approx(np.nanmean(ic))
    assert m["ICIR"] == pytest.approx(np.nanmean(ic) / np.nanstd(ic, ddof=1))
    assert m["Rank ICIR"] == pytest.approx(np.nanmean(ric) / np.nanstd(ric, ddof=1))


def test_signal_metrics_long_short_keys() -> None:
    df = random_frame(2, nan_share=0.0)
    m = signal_metrics(df["pred"], df["label"], long_short=True, ann_scaler=252)
    ls, la = long_short_returns(df["pred"], df["label"])
    assert m["Long-Short Ann Return"] == pytest.approx(ls.mean() * 252)
    assert m["Long-Avg Ann Sharpe"] == pytest.approx(la.mean() / la.std() * 252**0.5)


def test_ic_by_month() -> None:
    ic = pd.Series([0.1, 0.3, -0.2], pd.to_datetime(["2020-01-02", "2020-01-31", "2021-03-01"]))
    table = ic_by_month(ic)
    assert table.loc[2020, 1] == pytest.approx(0.2)
    assert table.loc[2021, 3] == pytest.approx(-0.2)
    assert table.shape == (2, 12) and np.isnan(table.loc[2020, 2])


def test_quantile_returns_by_hand() -> None:
    # 7 scored rows, 5 groups → 1 row per group, the 2 lowest scores are left out; one unscored row.
    df = frame(
        {
            "pred": [7.0, 6, 5, 4, 3, 2, 1, np.nan],
            "label": [0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.01, 0.08],
        }
    )
    q = quantile_returns(df["pred"], df["label"], n_groups=5)
    row = q.iloc[0]
    assert [row[f"Group{i}"] for i in range(1, 6)] == pytest.approx([0.07, 0.06, 0.05, 0.04, 0.03])
    assert row["long-short"] == pytest.approx(0.04)
    assert row["long-average"] == pytest.approx(0.07 - 0.045)  # mean over all 8 labels


def test_quantile_returns_match_pandas_slicing() -> None:
    df = random_frame(3)
    q = quantile_returns(df["pred"], df["label"], n_groups=3)
    s = df.dropna(subset=["pred"]).sort_values("pred", ascending=False, kind="stable")
    g = s.groupby(level="datetime")["label"]
    for i in range(3):
        want = g.apply(lambda x, i=i: x[len(x) // 3 * i : len(x) // 3 * (i + 1)].mean())
        got = q[f"Group{i + 1}"].reindex(want.index)
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_long_short_returns_by_hand() -> None:
    # 10 rows → k = int(10·0.2) = 2; NaN scores are never picked.
    df = frame(
        {
            "pred": [9.0, 8, 7, 6, 5, 4, 3, 2, 1, np.nan],
            "label": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 1.0],
        }
    )
    ls, la = long_short_returns(df["pred"], df["label"])
    assert ls.iloc[0] == pytest.approx(((0.9 + 0.8) / 2 - (0.1 + 0.2) / 2) / 2)
    assert la.iloc[0] == pytest.approx(np.mean([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 1.0]))


def test_pred_autocorr() -> None:
    same = frame({"pred": [1.0, 2, 3, 1, 2, 3]}, DAYS[:2])["pred"]
    flipped = frame({"pred": [1.0, 2, 3, 3, 2, 1]}, DAYS[:2])["pred"]
    assert np.isnan(pred_autocorr(same).iloc[0])  # nothing before the first day
    assert pred_autocorr(same).iloc[1] == pytest.approx(1.0)
    assert pred_autocorr(flipped).iloc[1] == pytest.approx(-1.0)


def test_pred_autocorr_matches_pandas() -> None:
    s = random_frame(4)["pred"].sort_index()
    prev = s.groupby(level="instrument").shift(1)
    df = pd.DataFrame({"s": s, "p": prev})
    want = df.groupby(level="datetime").apply(
        lambda x: x["s"].rank(pct=True).corr(x["p"].rank(pct=True))
    )
    pd.testing.assert_series_equal(pred_autocorr(s), want, check_names=False, atol=1e-12, rtol=0)


def test_topk_turnover_by_hand() -> None:
    # Day 2: top-2 by today's score = {S3, S2}; by yesterday's = {S1, S0} → turnover 1.
    # Bottom-2 today {S0, S1} vs yesterday {S3, S2} → 1. Day 3 repeats day 2's order → 0.
    s = frame({"pred": [4.0, 3, 2, 1, 1, 2, 3, 4, 1, 2, 3, 4]}, DAYS)["pred"]
    t = topk_turnover(s, k=2)
    assert t["Top"].iloc[0] == 1.0  # no previous score: nothing overlaps
    assert t["Top"].iloc[1] == 1.0 and t["Bottom"].iloc[1] == 1.0
    assert t["Top"].iloc[2] == 0.0 and t["Bottom"].iloc[2] == 0.0
    assert topk_turnover(s, n_groups=2)["Top"].iloc[2] == 0.0


def test_index_level_order_and_names() -> None:
    df = frame({"pred": [1.0, 2, 3], "label": [1.0, 2, 3]})
    swapped = df["pred"].swaplevel()
    assert daily_ic(swapped, df["label"]).iloc[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="MultiIndex"):
        daily_ic(pd.Series([1.0, 2.0]), pd.Series([1.0, 2.0]))
