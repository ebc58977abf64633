"""Qlib reference: ALSTMModel networks (static and TS) on fixed random inputs (torch file).

Arguments (JSON): cases, a list of {module: "pytorch_alstm" | "pytorch_alstm_ts", rnn_type,
d_feat, hidden_size, num_layers, steps, seed}. For each case the network is built right after
``torch.manual_seed(seed)`` (as Qlib's model wrapper does), put in eval mode and run on
``torch.randn`` inputs drawn after it: flat ``[B, d_feat * steps]`` rows for the static module
(which reshapes them itself), ``[B, steps, d_feat]`` windows for the TS one. Writes, with
``torch.save``, a plain dict {case name: {"state": state_dict, "x": inputs, "out": outputs}}.
"""

import importlib

import torch
from _common import parse

out, kw = parse()
BATCH = 64
result = {}
for case in kw["cases"]:
    module = importlib.import_module(f"qlib.contrib.model.{case['module']}")
    torch.manual_seed(case["seed"])
    net = module.ALSTMModel(
        d_feat=case["d_feat"],
        hidden_size=case["hidden_size"],
        num_layers=case["num_layers"],
        dropout=0.0,
        rnn_type=case["rnn_type"],
    ).eval()
    shape = (
        (BATCH, case["d_feat"] * case["steps"])
        if case["module"] == "pytorch_alstm"
        else (BATCH, case["steps"], case["d_feat"])
    )
    x = torch.randn(*shape)
    with torch.no_grad():
        y = net(x)
    name = "-".join(str(case[k]) for k in sorted(case))
    result[name] = {"state": dict(net.state_dict()), "x": x, "out": y}
torch.save(result, out)
