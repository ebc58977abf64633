"""Signal analysis: pure functions over a prediction ``score`` and a label, both ``pd.Series``
indexed ``(datetime, instrument)``.

Every per-date statistic is computed for all dates at once with grouped sums (no loop over
dates). Names and definitions follow Qlib's ``SigAnaRecord`` (``qlib.contrib.eva.alpha``) and its
model-performance report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DATE = "datetime"
INST = "instrument"


def daily_ic(pred: pd.Series, label: pd.Series) -> pd.Series:
    """Pearson correlation of ``pred`` and ``label`` per date (NaN pairs dropped), indexed by date.

    Equals ``df.groupby("datetime").apply(lambda d: d.pred.corr(d.label))``; a date with fewer
    than two valid pairs or a constant side is NaN.
    """
    df = _pair_frame(pred, label)
    return _grouped_pearson(df["pred"], df["label"], df.index.get_level_values(DATE))


def daily_rank_ic(pred: pd.Series, label: pd.Series) -> pd.Series:
    """Spearman correlation per date: Pearson of the average ranks of the valid pairs."""
    df = _pair_frame(pred, label)
    dates = df.index.get_level_values(DATE)
    valid = df.notna().all(axis=1).to_numpy()
    # Rank only the pairs that survive pairwise dropping, as Series.corr(method="spearman") does.
    ranked = df[valid].groupby(level=DATE, sort=False).rank(method="average").to_numpy()
    ranks = np.full((len(df), 2), np.nan)
    ranks[valid] = ranked
    return _grouped_pearson(pd.Series(ranks[:, 0]), pd.Series(ranks[:, 1]), dates)


def calc_ic(pred: pd.Series, label: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``(IC, Rank IC)`` per date, like ``qlib.contrib.eva.alpha.calc_ic``."""
    return daily_ic(pred, label), daily_rank_ic(pred, label)


def signal_metrics(
    pred: pd.Series,
    label: pd.Series,
    *,
    long_short: bool = False,
    ann_scaler: float = 252,
) -> dict[str, float]:
    """``IC``, ``ICIR``, ``Rank IC``, ``Rank ICIR`` (ICIR = mean/std, ddof=1, not annualized).

    With ``long_short=True`` also Qlib's ``Long-Short Ann Return/Sharpe`` and ``Long-Avg Ann
    Return/Sharpe`` from :func:`long_short_returns`, annualized with ``ann_scaler``.

    >>> days = pd.to_datetime(["2020-01-02", "2020-01-03"])
    >>> idx = pd.MultiIndex.from_product([days, list("ABC")])
    >>> s = pd.Series([1.0, 2, 3, 3, 1, 2], idx)
    >>> signal_metrics(s, s)["IC"]
    1.0
    """
    ic, ric = calc_ic(pred, label)
    # A zero std (constant IC) gives ±inf or NaN, as in Qlib: no warning needed.
    with np.errstate(divide="ignore", invalid="ignore"):
        metrics = {
            "IC": ic.mean(),
            "ICIR": ic.mean() / ic.std(),
            "Rank IC": ric.mean(),
            "Rank ICIR": ric.mean() / ric.std(),
        }
        if long_short:
            ls, la = long_short_returns(pred, label)
            metrics |= {
                "Long-Short Ann Return": ls.mean() * ann_scaler,
                "Long-Short Ann Sharpe": ls.mean() / ls.std() * ann_scaler**0.5,
                "Long-Avg Ann Return": la.mean() * ann_scaler,
                "Long-Avg Ann Sharpe": la.mean() / la.std() * ann_scaler**0.5,
            }
    return {k: float(v) for k, v in metrics.items()}


def ic_by_month(ic: pd.Series) -> pd.DataFrame:
    """Mean of a daily IC series per month: rows = year, columns = month 1..12 (NaN if absent)."""
    dates = pd.DatetimeIndex(ic.index)
    monthly = ic.groupby([dates.year, dates.month]).mean()
    table = monthly.unstack().reindex(columns=range(1, 13))
    table.index.name, table.columns.name = "year", "month"
    return table


def quantile_returns(pred: pd.Series, label: pd.Series, n_groups: int = 5) -> pd.DataFrame:
    """Mean label of ``n_groups`` score groups per date plus ``long-short`` and ``long-average``.

    As Qlib's model report: per date the rows with a score are sorted by score (descending) and
    cut into ``n_groups`` slices of ``len // n_groups`` rows (the remainder is left out);
    ``Group1`` is the top slice. ``long-short = Group1 − GroupN``, ``long-average = Group1 −``
    mean label of the date. Dates without any value are dropped.
    """
    if n_groups < 1:
        raise ValueError(f"n_groups must be ≥ 1, got {n_groups}")
    df = _pair_frame(pred, label)
    dates = df.index.get_level_values(DATE)
    scored = df[df["pred"].notna().to_numpy()]
    pos, size = _position_in_date(scored, ascending=False)
    width = size // n_groups
    group = np.where(width > 0, pos // np.maximum(width, 1), n_groups)
    keep = group < n_groups
    sel = scored[keep]
    by = [sel.index.get_level_values(DATE), group[keep]]
    table = sel["label"].groupby(by).mean().unstack()
    table = table.reindex(index=dates.unique().sort_values(), columns=range(n_groups))
    table.columns = [f"Group{i + 1}" for i in range(n_groups)]
    table["long-short"] = table["Group1"] - table[f"Group{n_groups}"]
    table["long-average"] = table["Group1"] - df["label"].groupby(dates, sort=False).mean()
    table.index.name = DATE
    return table.dropna(how="all")


def long_short_returns(
    pred: pd.Series, label: pd.Series, quantile: float = 0.2
) -> tuple[pd.Series, pd.Series]:
    """Qlib's ``calc_long_short_return``: ``(long_short, long_avg)`` per date.

    ``k = int(rows · quantile)`` per date (rows include NaN scores); long = mean label of the
    ``k`` highest scores, short = of the ``k`` lowest; ``long_short = (long − short) / 2`` (Qlib
    halves it) and ``long_avg`` = mean label of the date.
    """
    df = _pair_frame(pred, label)
    dates = df.index.get_level_values(DATE)
    size = df.groupby(level=DATE, sort=False)["pred"].transform("size").to_numpy()
    k = (size * quantile).astype(np.int64)
    order = dates.unique().sort_values()
    legs = []
    for ascending in (False, True):
        pos, _ = _position_in_date(df, ascending=ascending)
        pick = (pos < k) & df["pred"].notna().to_numpy()
        legs.append(df["label"][pick].groupby(dates[pick]).mean().reindex(order))
    long_avg = df["label"].groupby(dates, sort=False).mean().reindex(order)
    long_short = (legs[0] - legs[1]) / 2
    long_short.index.name = long_avg.index.name = DATE
    return long_short, long_avg


def pred_autocorr(pred: pd.Series, lag: int = 1) -> pd.Series:
    """Rank autocorrelation per date: Pearson of the percentile ranks of today's score and of each
    instrument's score ``lag`` rows earlier (its previous prediction), as Qlib's report."""
    s = _as_series(pred, "pred").sort_index()
    prev = s.groupby(level=INST, sort=False).shift(lag)
    dates = s.index.get_level_values(DATE)
    frame = pd.DataFrame({"now": s, "prev": prev})
    ranks = frame.groupby(level=DATE, sort=False).rank(pct=True)
    return _grouped_pearson(ranks["now"], ranks["prev"], dates)


def topk_turnover(pred: pd.Series, k: int | None = None, n_groups: int = 5) -> pd.DataFrame:
    """Top/bottom-``k`` turnover per date: ``1 − |top_k(score) ∩ top_k(prev score)| / k``.

    ``prev score`` is each instrument's previous prediction; both selections are among the
    date's rows. ``k`` defaults to ``rows // n_groups`` per date (Qlib's report); columns ``Top``
    and ``Bottom``.
    """
    s = _as_series(pred, "pred").sort_index()
    frame = pd.DataFrame({"now": s, "prev": s.groupby(level=INST, sort=False).shift(1)})
    dates = frame.index.get_level_values(DATE)
    size = frame.groupby(level=DATE, sort=False)["now"].transform("size").to_numpy()
    kk = size // n_groups if k is None else np.minimum(k, size)
    out = {}
    for name, ascending in (("Top", False), ("Bottom", True)):
        in_now = _in_first_k(frame, "now", kk, ascending)
        in_prev = _in_first_k(frame, "prev", kk, ascending)
        both = pd.Series(in_now & in_prev).groupby(dates, sort=False).sum()
        kd = pd.Series(kk).groupby(dates, sort=False).first()
        out[name] = 1 - both / kd
    table = pd.DataFrame(out)
    table.index.name = DATE
    return table


# --- helpers -------------------------------------------------------------------------------------


def _as_series(x: pd.Series | pd.DataFrame, name: str) -> pd.Series:
    """The first column of a frame, or the series itself, as float64 with a (datetime,
    instrument) index."""
    if isinstance(x, pd.DataFrame):
        x = x.iloc[:, 0]
    if not isinstance(x.index, pd.MultiIndex) or x.index.nlevels != 2:
        raise ValueError(f"{name}: expected a (datetime, instrument) MultiIndex")
    names = list(x.index.names)
    if set(names) == {DATE, INST} and names[0] != DATE:
        x = x.swaplevel()
    elif set(names) != {DATE, INST}:
        x = x.rename_axis([DATE, INST])
    return x.astype("float64").rename(name)


def _pair_frame(pred: pd.Series, label: pd.Series) -> pd.DataFrame:
    """``pred`` and ``label`` aligned on the union of their indexes, columns ``pred``, ``label``."""
    return pd.DataFrame({"pred": _as_series(pred, "pred"), "label": _as_series(label, "label")})


def _grouped_pearson(x: pd.Series, y: pd.Series, dates: pd.Index) -> pd.Series:
    """Pearson correlation of ``x`` and ``y`` per date over rows where both are finite."""
    xv = x.to_numpy(dtype=np.float64)
    yv = y.to_numpy(dtype=np.float64)
    valid = np.isfinite(xv) & np.isfinite(yv)
    codes, uniques = pd.factorize(dates, sort=True)
    n_dates = len(uniques)
    c = codes[valid]
    xv, yv = xv[valid], yv[valid]
    n = np.bincount(c, minlength=n_dates).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Two passes (centre first) for the same accuracy as np.corrcoef.
        dx = xv - (np.bincount(c, xv, n_dates) / n)[c]
        dy = yv - (np.bincount(c, yv, n_dates) / n)[c]
        sxy = np.bincount(c, dx * dy, n_dates)
        sxx = np.bincount(c, dx * dx, n_dates)
        syy = np.bincount(c, dy * dy, n_dates)
        r = sxy / np.sqrt(sxx * syy)
    r = np.where(n >= 2, np.clip(r, -1.0, 1.0), np.nan)
    return pd.Series(r, index=pd.Index(uniques, name=DATE))


def _position_in_date(df: pd.DataFrame, ascending: bool) -> tuple[np.ndarray, np.ndarray]:
    """0-based position of each row within its date when sorted by ``pred`` (NaN last, ties in
    row order), and the date's row count; both aligned with ``df``'s rows."""
    dates = df.index.get_level_values(DATE)
    codes = pd.factorize(dates)[0]
    key = df["pred"].to_numpy(dtype=np.float64)
    key = np.where(np.isnan(key), np.inf, key if ascending else -key)
    order = np.lexsort((np.arange(len(df)), key, codes))
    size = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(size)[:-1]])
    pos = np.empty(len(df), dtype=np.int64)
    pos[order] = np.arange(len(df)) - starts[codes[order]]
    return pos, size[codes]


def _in_first_k(frame: pd.DataFrame, col: str, k: np.ndarray, ascending: bool) -> np.ndarray:
    """Rows among the first ``k`` (per row's date) of ``col`` sorted within the date, NaN never."""
    pos, _ = _position_in_date(frame[[col]].rename(columns={col: "pred"}), ascending)
    return (pos < k) & frame[col].notna().to_numpy()
