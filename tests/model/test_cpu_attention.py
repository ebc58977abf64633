"""cpu_attention: the same scores, attention weights and gradients as ALSTMNet's torch ops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from alstm.model import cpu_attention, kernels
from alstm.model.net import ALSTMNet

pytestmark = pytest.mark.skipif(kernels.SGEMM is None, reason="this torch has no oneMKL sgemm_")


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(net: ALSTMNet, x: torch.Tensor) -> list[torch.Tensor]:
    score, weights = net(x, return_attention=True)
    grad = torch.linspace(-1, 2, len(score))
    return [score, weights, *torch.autograd.grad(score, [x, *net.parameters()], grad)]


@pytest.mark.parametrize("head", ["both", "attention"])
@pytest.mark.parametrize("rnn_type", ["GRU", "LSTM"])
def test_matches_the_torch_ops(
    head: str, rnn_type: str, one_thread: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    net = ALSTMNet(d_feat=3, hidden_size=10, num_layers=2, rnn_type=rnn_type, head=head)
    with torch.no_grad():
        net.att_score.weight.mul_(30)  # attention far from uniform
    x = torch.randn(9, 7, 3, requires_grad=True)
    assert cpu_attention.cpu_attention_applies(torch.zeros(1), net.att_dropout)
    calls: list[int] = []
    apply = cpu_attention._AttentionHead.apply
    monkeypatch.setattr(
        cpu_attention._AttentionHead, "apply", lambda *a: calls.append(1) or apply(*a)
    )
    mine = _run(net, x)
    assert calls == [1]
    monkeypatch.setattr(kernels, "SGEMM", None)
    theirs = _run(net, x)
    assert calls == [1]  # the torch ops this time
    assert mine[1].std() > 0.02  # the weights are not all equal
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=2e-6, rtol=1e-5)


def test_not_used_where_it_does_not_apply(one_thread: None) -> None:
    out = torch.zeros(2, 3, 4)
    dropout = torch.nn.Dropout(0.5)
    assert not cpu_attention.cpu_attention_applies(out, dropout)  # would draw a mask
    assert cpu_attention.cpu_attention_applies(out, dropout.eval())
    assert not cpu_attention.cpu_attention_applies(out.double(), dropout)
    torch.set_num_threads(2)
    assert not cpu_attention.cpu_attention_applies(out, dropout)
