"""The fast tanh: torch's tanh to float32 rounding, with the right gradient."""

from __future__ import annotations

import torch

from alstm.model.activations import tanh, tanh_


def test_tanh_matches_torch_over_the_whole_range() -> None:
    a = torch.cat([torch.linspace(-30, 30, 20001), torch.tensor([0.0, 1e-30, -1e-30])])
    expected = torch.tanh(a.double())
    assert (tanh(a).double() - expected).abs().max() < 3e-7
    assert (tanh_(a.clone()).double() - expected).abs().max() < 3e-7
    assert tanh(torch.tensor([40.0, -40.0])).tolist() == [1.0, -1.0]


def test_tanh_gradient() -> None:
    a = torch.randn(50, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tanh, (a,))
    b = a.detach().float().requires_grad_()
    tanh(b).sum().backward()
    torch.testing.assert_close(b.grad, 1 - torch.tanh(b.detach()) ** 2)
