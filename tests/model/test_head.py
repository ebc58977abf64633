"""The output-layer variants (``head``): shapes, what each reads, parameters, fit/save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from alstm.model import ALSTM
from alstm.model.checkpoint import CHECKPOINT, load_tensors, save_atomic
from alstm.model.net import HEADS, ALSTMNet
from tests.model.conftest import FAST, FakeDataset


def net(head: str) -> ALSTMNet:
    torch.manual_seed(0)
    return ALSTMNet(d_feat=3, hidden_size=8, num_layers=2, head=head).eval()


@pytest.mark.parametrize("head", HEADS)
def test_shapes_and_weights_of_every_head(head: str) -> None:
    x = torch.randn(5, 7, 3)
    score, weights = net(head)(x, return_attention=True)
    assert score.shape == (5,) and weights.shape == (5, 7)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(5))
    torch.testing.assert_close(net(head)(x), score)
    assert net(head).head.in_features == (16 if head == "both" else 8)


def test_default_head_is_qlibs_with_the_same_initial_weights() -> None:
    torch.manual_seed(0)
    default = ALSTMNet(d_feat=3, hidden_size=8, num_layers=2).state_dict()
    both = net("both").state_dict()
    assert list(default) == list(both)
    assert all(torch.equal(default[k], both[k]) for k in default)


def test_last_head_has_no_attention_net_and_reads_only_the_last_step() -> None:
    last = net("last")
    assert not any(name.startswith("att_") for name, _ in last.named_modules())
    n_attention = 8 * 4 + 4 + 4  # att_hidden weight + bias, att_score weight
    n_both = sum(p.numel() for p in net("both").parameters())
    assert sum(p.numel() for p in last.parameters()) == n_both - n_attention - 8
    x = torch.randn(4, 6, 3)
    _, weights = last(x, return_attention=True)
    assert torch.equal(weights[:, -1], torch.ones(4)) and weights[:, :-1].abs().sum() == 0
    # Its score is the head applied to the recurrence's last output, nothing else.
    z = torch.tanh(last.input_proj(x.transpose(0, 1)))
    out, _ = torch.nn.GRU.forward(last.rnn, z)
    torch.testing.assert_close(last(x), last.head(out[-1])[:, 0])


def test_attention_head_reads_only_the_pooled_state() -> None:
    attention = net("attention")
    x = torch.randn(4, 6, 3)
    z = torch.tanh(attention.input_proj(x.transpose(0, 1)))
    out, _ = torch.nn.GRU.forward(attention.rnn, z)
    _, weights = attention(x, return_attention=True)
    pooled = (out * weights.t()[..., None]).sum(dim=0)
    torch.testing.assert_close(attention(x), attention.head(pooled)[:, 0])


def test_unknown_head_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown head 'mean'; valid: both, last, attention"):
        ALSTMNet(head="mean")
    with pytest.raises(ValueError, match="unknown head 'mean'; valid: 'both', 'last'"):
        ALSTM(**FAST, head="mean").fit(None)  # type: ignore[arg-type]


def test_model_head_round_trips_through_save_and_load(dataset: FakeDataset, tmp_path: Path) -> None:
    model = ALSTM(**FAST, head="last")
    assert model.get_params()["head"] == "last" and "head='last'" in repr(model)
    model.fit(dataset, save_path=tmp_path)
    assert model.net_.head_type == "last"
    loaded = ALSTM.load(tmp_path)
    assert loaded.get_params()["head"] == "last"
    np.testing.assert_array_equal(loaded.predict(dataset), model.predict(dataset))


def test_checkpoint_without_head_resumes_as_the_default(
    dataset: FakeDataset, tmp_path: Path
) -> None:
    """Checkpoints written before ``head`` existed hold Qlib's head: they still resume."""
    model = ALSTM(**FAST).fit(dataset, save_path=tmp_path)
    state = load_tensors(tmp_path / CHECKPOINT)
    config = json.loads(state["config"])
    del config["head"]
    save_atomic({**state, "config": json.dumps(config)}, tmp_path / CHECKPOINT)
    resumed = ALSTM(**FAST).fit(dataset, save_path=tmp_path, resume=True)
    np.testing.assert_array_equal(resumed.predict(dataset), model.predict(dataset))
    with pytest.raises(ValueError, match="head: saved 'both' vs 'last'"):
        ALSTM(**FAST, head="last").fit(dataset, save_path=tmp_path, resume=True)
