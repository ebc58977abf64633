"""Qlib reference: TopkDropout backtest + risk analysis on a prediction file (JSON).

Arguments (JSON): provider, pred (Parquet with a ``score`` column indexed datetime/instrument),
start, end, strategy_kwargs (TopkDropoutStrategy's, without the signal), account, benchmark,
exchange_kwargs. The output holds the daily report
(Qlib's ``report_normal`` columns), the end-of-day positions (amount per held stock), the risk
analysis of the excess return with and without cost, the backtest's own wall time and peak RSS.
"""

import json
import resource
import time

import pandas as pd
from _common import init_qlib, parse

out, kw = parse()
init_qlib(kw["provider"])
from qlib.backtest import backtest  # noqa: E402
from qlib.contrib.evaluate import risk_analysis  # noqa: E402

pred = pd.read_parquet(kw["pred"])["score"]

t0 = time.perf_counter()
portfolio, _ = backtest(
    start_time=kw["start"],
    end_time=kw["end"],
    strategy={
        "class": "TopkDropoutStrategy",
        "module_path": "qlib.contrib.strategy.signal_strategy",
        "kwargs": {"signal": pred, **kw["strategy_kwargs"]},
    },
    executor={
        "class": "SimulatorExecutor",
        "module_path": "qlib.backtest.executor",
        "kwargs": {"time_per_step": "day", "generate_portfolio_metrics": True},
    },
    benchmark=kw["benchmark"],
    account=kw["account"],
    exchange_kwargs=kw["exchange_kwargs"],
)
elapsed = time.perf_counter() - t0

report, positions = portfolio["1day"]
risk = {
    "excess_return_without_cost": risk_analysis(report["return"] - report["bench"], freq="day"),
    "excess_return_with_cost": risk_analysis(
        report["return"] - report["bench"] - report["cost"], freq="day"
    ),
}
dates = [d.strftime("%Y-%m-%d") for d in report.index]
result = {
    "report": {
        c: dict(zip(dates, report[c].astype(float).tolist(), strict=True)) for c in report.columns
    },
    "positions": {
        d.strftime("%Y-%m-%d"): {s: p.get_stock_amount(s) for s in p.get_stock_list()}
        for d, p in positions.items()
    },
    "risk": {k: v["risk"].astype(float).to_dict() for k, v in risk.items()},
    "backtest_s": elapsed,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}
out.write_text(json.dumps(result))
