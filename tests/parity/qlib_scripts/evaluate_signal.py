"""Qlib reference: SigAnaRecord metrics of a prediction file (JSON).

Arguments (JSON): pred (Parquet with ``score`` and ``label`` columns indexed datetime/instrument),
ann_scaler. Uses ``qlib.contrib.eva.alpha.calc_ic`` and ``calc_long_short_return`` exactly as
``SigAnaRecord(ana_long_short=True)`` does; no data provider is needed.
"""

import json

import pandas as pd
from _common import parse

out, kw = parse()
from qlib.contrib.eva.alpha import calc_ic, calc_long_short_return  # noqa: E402

df = pd.read_parquet(kw["pred"])
ic, ric = calc_ic(df["score"], df["label"])
long_short_r, long_avg_r = calc_long_short_return(df["score"], df["label"])
ann = kw["ann_scaler"]
metrics = {
    "IC": ic.mean(),
    "ICIR": ic.mean() / ic.std(),
    "Rank IC": ric.mean(),
    "Rank ICIR": ric.mean() / ric.std(),
    "Long-Short Ann Return": long_short_r.mean() * ann,
    "Long-Short Ann Sharpe": long_short_r.mean() / long_short_r.std() * ann**0.5,
    "Long-Avg Ann Return": long_avg_r.mean() * ann,
    "Long-Avg Ann Sharpe": long_avg_r.mean() / long_avg_r.std() * ann**0.5,
}


def by_date(s: pd.Series) -> dict:
    return {d.strftime("%Y-%m-%d"): float(v) for d, v in s.items()}


result = {
    "metrics": {k: float(v) for k, v in metrics.items()},
    "ic": by_date(ic),
    "ric": by_date(ric),
    "long_short": by_date(long_short_r),
    "long_avg": by_date(long_avg_r),
}
out.write_text(json.dumps(result))
