"""cpu_projection: the same values and gradients as tanh(Linear) on the transposed input."""

from __future__ import annotations

import pytest
import torch

from alstm.model import kernels
from alstm.model.activations import tanh
from alstm.model.cpu_projection import project

pytestmark = pytest.mark.skipif(kernels.SGEMM is None, reason="this torch has no oneMKL sgemm_")


@pytest.mark.parametrize("x_grad", [False, True])
def test_matches_the_torch_ops(x_grad: bool) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(5, 6)
    x = torch.randn(9, 7, 5) * 2  # [B, T, F]; * 2: tanh well into its curve
    x_ref = x.clone().requires_grad_(x_grad)
    x.requires_grad_(x_grad)
    mine = project(x, linear)
    theirs = tanh(linear(x_ref.transpose(0, 1)))
    assert mine.shape == (7, 9, 6) and mine.is_contiguous()
    torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=0)
    grad = torch.randn_like(mine)
    inputs, ref_inputs = [*linear.parameters()], [*linear.parameters()]
    if x_grad:
        inputs, ref_inputs = [x, *inputs], [x_ref, *ref_inputs]
    for a, b in zip(
        torch.autograd.grad(mine, inputs, grad),
        torch.autograd.grad(theirs, ref_inputs, grad),
        strict=True,
    ):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
