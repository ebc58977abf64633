"""Parity of alstm.evaluate with Qlib's SigAnaRecord metrics, backtest and risk analysis.

The prediction is the raw label ``Ref($close,-2)/Ref($close,-1)-1`` of the CSI300 members plus
seeded Gaussian noise, made once here from alstm's loader and written to one Parquet file that
both sides read (its name carries a hash of its content, so Qlib's cached reference follows it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alstm.data.provider import QlibDataDir
from alstm.evaluate import (
    ExchangeRules,
    TopkDropout,
    backtest,
    calc_ic,
    long_short_returns,
    signal_metrics,
)
from tests.parity.conftest import CACHE

pytestmark = pytest.mark.parity

START, END = "2017-01-01", "2020-08-01"
NOISE = 0.1
SEED = 0
# The benchmark's PortAnaRecord (SPEC §8), and a variant that exercises the other rules: vwap
# deals, trading at the limit allowed one way, tradable-only picks, a 2-day holding minimum and a
# small account, so that lot rounding and the minimum cost bind on most deals.
CASES = {
    "benchmark": {
        "start": START,
        "end": END,
        "account": 100_000_000,
        "strategy_kwargs": {"topk": 50, "n_drop": 5},
        "exchange_kwargs": {
            "limit_threshold": 0.095,
            "deal_price": "close",
            "open_cost": 0.0005,
            "close_cost": 0.0015,
            "min_cost": 5,
        },
    },
    "variant": {
        "start": "2019-01-01",
        "end": END,
        "account": 1_000_000,
        "strategy_kwargs": {
            "topk": 30,
            "n_drop": 3,
            "hold_thresh": 2,
            "only_tradable": True,
            "forbid_all_trade_at_limit": False,
            "risk_degree": 0.9,
        },
        "exchange_kwargs": {
            "limit_threshold": 0.05,
            "deal_price": "vwap",
            "open_cost": 0.001,
            "close_cost": 0.002,
            "min_cost": 50,
        },
    },
}


@pytest.fixture(scope="module")
def pred_file(csi300_dir: Path) -> Path:
    """Parquet with ``score`` (label + N(0, 0.1²) noise) and ``label`` over the test segment."""
    data = QlibDataDir(csi300_dir)
    cal = data.calendar
    # Two trading days past END so the label of the last test days exists.
    end_row = int(cal.searchsorted(pd.Timestamp(END), side="right")) + 1
    panel = data.load(["close"], START, cal[end_row], markets=["csi300"])
    close = panel["close"]
    label = np.full_like(close, np.nan)
    label[:-2] = close[2:] / close[1:-1] - np.float32(1)  # float32, as Qlib's expression
    rows = panel.rows("csi300")
    rows[panel.calendar > pd.Timestamp(END)] = False
    t, n = np.nonzero(rows)
    index = pd.MultiIndex.from_arrays(
        [panel.calendar[t], np.asarray(panel.instruments, dtype=object)[n]],
        names=["datetime", "instrument"],
    )
    lab = label[t, n]
    score = lab.astype(np.float64) + np.random.default_rng(SEED).normal(0.0, NOISE, len(lab))
    frame = pd.DataFrame({"score": score, "label": lab}, index=index)
    digest = hashlib.sha256(
        score.tobytes() + lab.tobytes() + "".join(index.get_level_values(1)).encode()
    )
    path = CACHE / f"evaluate-pred-{digest.hexdigest()[:16]}.parquet"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        frame.to_parquet(tmp)
        tmp.replace(path)
    return path


@pytest.fixture(scope="module")
def pred(pred_file: Path) -> pd.DataFrame:
    return pd.read_parquet(pred_file)


def _series(d: dict) -> pd.Series:
    s = pd.Series(d, dtype="float64")
    s.index = pd.to_datetime(s.index)
    return s


def test_signal_metrics_match_qlib(qlib_ref, pred_file: Path, pred: pd.DataFrame) -> None:
    ref = json.loads(
        qlib_ref("evaluate_signal", ".json", pred=str(pred_file), ann_scaler=252).read_text()
    )
    ours = signal_metrics(pred["score"], pred["label"], long_short=True, ann_scaler=252)
    for key in ("IC", "ICIR", "Rank IC", "Rank ICIR"):
        assert ours[key] == pytest.approx(ref["metrics"][key], abs=1e-9), key
    ic, ric = calc_ic(pred["score"], pred["label"])
    for name, s in (("ic", ic), ("ric", ric)):
        r = _series(ref[name])
        assert s.index.equals(r.index)
        np.testing.assert_allclose(s, r, rtol=0, atol=1e-12, err_msg=name)
    # Qlib averages the float32 label in float32; alstm in float64: agreement to float32 precision.
    ls, la = long_short_returns(pred["score"], pred["label"])
    np.testing.assert_allclose(ls, _series(ref["long_short"]), rtol=0, atol=1e-7)
    np.testing.assert_allclose(la, _series(ref["long_avg"]), rtol=0, atol=1e-7)
    for key in ("Long-Short Ann Return", "Long-Short Ann Sharpe", "Long-Avg Ann Return"):
        assert ours[key] == pytest.approx(ref["metrics"][key], rel=1e-6), key


@pytest.fixture(scope="module", params=list(CASES))
def backtest_pair(request, qlib_ref, csi300_dir: Path, pred_file: Path, pred: pd.DataFrame):
    case = CASES[request.param]
    ref_path = qlib_ref(
        "evaluate_backtest",
        ".json",
        provider=str(csi300_dir),
        pred=str(pred_file),
        benchmark="SH000300",
        **case,
    )
    ref = json.loads(ref_path.read_text())
    ours = backtest(
        pred["score"],
        csi300_dir,
        case["start"],
        case["end"],
        strategy=TopkDropout(**case["strategy_kwargs"]),
        rules=ExchangeRules(**case["exchange_kwargs"]),
        benchmark="SH000300",
        account=case["account"],
    )
    return ours, ref


def test_backtest_report_matches_qlib(backtest_pair) -> None:
    ours, ref = backtest_pair
    report = pd.DataFrame({c: _series(v) for c, v in ref["report"].items()})
    assert ours.report.index.equals(report.index)
    assert list(ours.report.columns) == list(report.columns)
    # Money columns agree to float rounding of the summation order (Qlib sums over a set).
    for col in ("account", "total_turnover", "total_cost", "value", "cash"):
        np.testing.assert_allclose(ours.report[col], report[col], rtol=1e-12, err_msg=col)
    for col in ("return", "turnover", "cost"):
        np.testing.assert_allclose(ours.report[col], report[col], rtol=0, atol=1e-12, err_msg=col)
    np.testing.assert_array_equal(ours.report["bench"], report["bench"])


def test_backtest_positions_match_qlib(backtest_pair) -> None:
    ours, ref = backtest_pair
    positions = ours.positions["amount"]
    held_days = set(positions.index.get_level_values("datetime"))
    for day, holdings in ref["positions"].items():
        date = pd.Timestamp(day)
        theirs = pd.Series(holdings, dtype="float64").sort_index()
        mine = positions.loc[date] if date in held_days else pd.Series(dtype="float64")
        assert list(mine.index) == list(theirs.index), day
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, err_msg=day)


def test_backtest_risk_matches_qlib(backtest_pair) -> None:
    ours, ref = backtest_pair
    risk = ours.risk()
    for kind in ("excess_return_without_cost", "excess_return_with_cost"):
        for key, value in ref["risk"][kind].items():
            assert risk.loc[key, kind] == pytest.approx(value, abs=1e-6), (kind, key)
