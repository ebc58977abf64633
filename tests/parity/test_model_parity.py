"""ALSTMNet equals Qlib's ALSTMModel: a Qlib state_dict loaded through ``QLIB_KEY_MAP`` gives the
same outputs, and the same torch seed gives the same initial weights. No market data needed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from alstm.model.net import ALSTMNet, qlib_to_alstm_keys

pytestmark = pytest.mark.parity

CASES = [
    {"module": m, "rnn_type": r, "d_feat": d, "hidden_size": 64, "num_layers": 2, "seed": s}
    for s, (m, r, d) in enumerate(
        (m, r, d)
        for m in ("pytorch_alstm", "pytorch_alstm_ts")
        for r in ("GRU", "LSTM")
        for d in (20, 6)
    )
] + [
    {"module": "pytorch_alstm_ts", "rnn_type": "GRU", "d_feat": 5, "hidden_size": 32,
     "num_layers": 3, "seed": 99},
]  # fmt: skip
for case in CASES:
    case["steps"] = 60 if case["d_feat"] == 6 else 20


@pytest.fixture(scope="module")
def reference(qlib_ref: Callable[..., Path]) -> dict:
    return torch.load(qlib_ref("model_alstm", suffix=".pt", cases=CASES), weights_only=True)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_same_outputs_and_same_initial_weights(reference: dict, case: dict) -> None:
    ref = reference["-".join(str(case[k]) for k in sorted(case))]
    args = (case["d_feat"], case["hidden_size"], case["num_layers"], 0.0, case["rnn_type"])
    torch.manual_seed(case["seed"])
    net = ALSTMNet(*args).eval()
    mapped = qlib_to_alstm_keys(ref["state"])
    for key, value in net.state_dict().items():  # same seed → bit-identical initial weights
        assert torch.equal(value, mapped[key]), key

    other = ALSTMNet(*args).eval()  # different weights until Qlib's are loaded
    other.load_qlib_state_dict(ref["state"])
    x = ref["x"]
    if case["module"] == "pytorch_alstm":  # flat rows [B, F·T], F blocks of T lags → [B, T, F]
        x = x.reshape(len(x), case["d_feat"], -1).transpose(1, 2)
    with torch.no_grad():
        out = other(x)
    diff = (out - ref["out"]).abs().max().item()
    print(f"{case}: max |diff| = {diff:.3g}")
    assert diff < 1e-6
