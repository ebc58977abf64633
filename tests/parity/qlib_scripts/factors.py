"""Qlib reference: Alpha158 / Alpha360 raw features + the label via D.features (Parquet)."""

import time

from _common import init_qlib, parse

out, kw = parse()
init_qlib(kw["provider"])
from qlib.contrib.data.loader import Alpha158DL, Alpha360DL  # noqa: E402
from qlib.data import D  # noqa: E402

loader = {"alpha158": Alpha158DL, "alpha360": Alpha360DL}[kw["set"]]
fields, names = loader.get_feature_config()
fields, names = list(fields), list(names)
fields.append("Ref($close, -2)/Ref($close, -1) - 1")
names.append("LABEL0")
t0 = time.perf_counter()
df = D.features(D.instruments(kw["market"]), fields, start_time=kw["start"], end_time=kw["end"])
print(f"qlib D.features: {time.perf_counter() - t0:.1f}s", flush=True)
df.columns = names
df = df.swaplevel().sort_index()
df.index.names = ["datetime", "instrument"]
df.to_parquet(out)
