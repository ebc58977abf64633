"""Qlib reference: D.features of raw fields for a market (Parquet, index datetime/instrument)."""

from _common import init_qlib, parse

out, kw = parse()
init_qlib(kw["provider"])
from qlib.data import D  # noqa: E402

fields = [f"${f}" for f in kw["fields"]]
df = D.features(D.instruments(kw["market"]), fields, start_time=kw["start"], end_time=kw["end"])
df.columns = kw["fields"]
df = df.swaplevel().sort_index()
df.index.names = ["datetime", "instrument"]
df.to_parquet(out)
