"""ALSTMNet: shapes, attention, parameter count, Qlib key mapping."""

from __future__ import annotations

import pytest
import torch

from alstm.model.net import QLIB_KEY_MAP, ALSTMNet, qlib_to_alstm_keys


@pytest.mark.parametrize("rnn_type", ["GRU", "LSTM", "gru"])
def test_shapes_and_attention(rnn_type: str) -> None:
    torch.manual_seed(0)
    net = ALSTMNet(d_feat=4, hidden_size=8, num_layers=2, rnn_type=rnn_type).eval()
    x = torch.randn(7, 11, 4)
    score, weights = net(x, return_attention=True)
    assert score.shape == (7,) and weights.shape == (7, 11)
    assert torch.all(weights >= 0)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(7))
    torch.testing.assert_close(net(x), score)


def test_parameter_count_matches_qlib() -> None:
    net = ALSTMNet(d_feat=20, hidden_size=64, num_layers=2)
    assert sum(p.numel() for p in net.parameters()) == 53_505  # SPEC §7 (verified on Qlib)


def test_rnn_type_is_honoured() -> None:
    assert isinstance(ALSTMNet(rnn_type="LSTM").rnn, torch.nn.LSTM)
    assert isinstance(ALSTMNet().rnn, torch.nn.GRU)


def test_unknown_rnn_type_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown rnn_type 'RNN'; valid: GRU, LSTM"):
        ALSTMNet(rnn_type="RNN")


def test_bfloat16_precision_runs_only_through_cpu_gru() -> None:
    with pytest.raises(ValueError, match="unknown precision 'half'; valid: float32, bfloat16"):
        ALSTMNet(d_feat=3, hidden_size=4, precision="half")
    lstm = ALSTMNet(d_feat=3, hidden_size=4, rnn_type="LSTM", precision="bfloat16")
    with pytest.raises(RuntimeError, match="precision='bfloat16' needs a GRU on the CPU"):
        lstm(torch.randn(2, 5, 3))
    gru = ALSTMNet(d_feat=3, hidden_size=4, precision="bfloat16")
    assert gru(torch.randn(2, 5, 3)).shape == (2,)


def test_attention_pools_the_sequence() -> None:
    """The output depends on early steps only through the recurrence and the attention."""
    torch.manual_seed(0)
    net = ALSTMNet(d_feat=2, hidden_size=4, num_layers=1).eval()
    x = torch.randn(3, 6, 2)
    y = x.clone()
    y[:, 0] += 1.0
    assert not torch.allclose(net(x), net(y))


def test_qlib_keys_map_onto_ours() -> None:
    ours = ALSTMNet(d_feat=6, hidden_size=8, num_layers=2).state_dict()
    qlib_names = [
        "net.fc_in.weight",
        "net.fc_in.bias",
        *(f"rnn.{w}_{k}_l{i}" for w in ("weight", "bias") for k in ("ih", "hh") for i in (0, 1)),
        "fc_out.weight",
        "fc_out.bias",
        "att_net.att_fc_in.weight",
        "att_net.att_fc_in.bias",
        "att_net.att_fc_out.weight",
    ]
    renamed = qlib_to_alstm_keys({k: torch.zeros(1) for k in qlib_names})
    assert sorted(renamed) == sorted(ours)
    assert set(QLIB_KEY_MAP.values()) == {k.split(".")[0] + "." for k in ours}


def test_unknown_qlib_key_is_an_error() -> None:
    with pytest.raises(KeyError, match="not a Qlib ALSTMModel key"):
        qlib_to_alstm_keys({"encoder.weight": torch.zeros(1)})
