"""``tanh`` as ``2σ(2a) − 1``: the same function to float32 rounding (within 2e-7), several times
faster where torch's CPU ``tanh`` is not vectorized (this machine's build: 7.3 ms for 3M floats
on one thread, against 1.5 ms for the four vectorized passes here)."""

from __future__ import annotations

import torch


def _from_doubled(d: torch.Tensor) -> torch.Tensor:
    """``d ← 2σ(d) − 1`` in place (= tanh(d / 2))."""
    return d.sigmoid_().mul_(2).sub_(1)


def tanh_(a: torch.Tensor) -> torch.Tensor:
    """``a ← tanh(a)`` in place (not differentiable)."""
    return _from_doubled(a.mul_(2))


class _Tanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, a: torch.Tensor) -> torch.Tensor:
        out = _from_doubled(a * 2)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return grad * (1 - out * out)  # tanh' = 1 − tanh²


def tanh(a: torch.Tensor) -> torch.Tensor:
    """``torch.tanh(a)``, differentiable, computed as ``2σ(2a) − 1``."""
    return _Tanh.apply(a)
