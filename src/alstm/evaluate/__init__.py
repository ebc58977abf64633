"""Evaluation of a prediction: signal metrics, the TopkDropout backtest and risk analysis."""

from alstm.evaluate.backtest import BacktestResult, backtest
from alstm.evaluate.exchange import Exchange, ExchangeRules
from alstm.evaluate.risk import annualization, risk_analysis
from alstm.evaluate.signal import (
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
from alstm.evaluate.strategy import TopkDropout

__all__ = [
    "BacktestResult",
    "Exchange",
    "ExchangeRules",
    "TopkDropout",
    "annualization",
    "backtest",
    "calc_ic",
    "daily_ic",
    "daily_rank_ic",
    "ic_by_month",
    "long_short_returns",
    "pred_autocorr",
    "quantile_returns",
    "risk_analysis",
    "signal_metrics",
    "topk_turnover",
]
