"""ALSTMNet's input projection ``tanh(x Wᵀ + b)``, turned time-major, as one compiled pass each
way on one CPU thread.

For ``x`` ``[B, T, F]`` it returns ``z`` ``[T, B, H]`` with ``z[t, b] = tanh(W x[b, t] + b)``
(tanh as ``2σ(2a) − 1``, as ``activations.tanh``), equal to the torch ops
``tanh(Linear(x.transpose(0, 1)))`` to float32 rounding. Why: in torch the transpose, the
product, tanh's four passes and their backward are ~12 ops over ``[T, B, H]`` (about 1 ms of a
400-row Alpha158 training slice); here the product runs on all ``B·T`` rows at once on oneMKL
and tanh and the transpose are one pass.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import torch
from torch import nn

from alstm.model.kernels import matmul, tanh


def project(x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """``tanh(linear(x))`` for ``x`` ``[B, T, F]``, returned time-major ``[T, B, H]``
    (contiguous); only where ``kernels.compiled_here(x)``."""
    return _Projection.apply(x.contiguous(), linear.weight, linear.bias)


class _Projection(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor
    ) -> torch.Tensor:
        batch, steps, _ = x.shape
        pre = x.new_empty(batch, steps, w.shape[0])  # torch's memory: 64-byte aligned
        z = x.new_empty(steps, batch, w.shape[0])
        _forward(*(t.detach().numpy() for t in (x, w, b, pre, z)))
        ctx.save_for_backward(x, w, z)
        return z

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, d_z: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, w, z = ctx.saved_tensors
        d_pre = x.new_empty(x.shape[0], x.shape[1], w.shape[0])
        d_x = torch.empty_like(x) if ctx.needs_input_grad[0] else x.new_empty(0, 0, 0)
        d_w, d_b = torch.empty_like(w), x.new_empty(w.shape[0])
        arrays = (d_z.contiguous(), x, w, z, d_pre, d_x, d_w, d_b)
        _backward(*(t.detach().numpy() for t in arrays))
        return (d_x if ctx.needs_input_grad[0] else None), d_w, d_b


@nb.njit(cache=True, boundscheck=False, nogil=True, error_model="numpy")
def _forward(x, w, b, pre, z):  # pragma: no cover - numba
    """``pre`` ``[B, T, H]`` ← ``x Wᵀ`` (scratch), ``z`` ``[T, B, H]`` ← ``tanh(pre + b)``."""
    batch, steps, n_in = x.shape
    hidden = w.shape[0]
    flat_x, flat_pre = x.reshape(batch * steps, n_in), pre.reshape(batch * steps, hidden)
    matmul(flat_x, False, w, True, flat_pre, np.float32(0.0), np.empty(10, np.float32))
    for t in range(steps):
        for i in range(batch):
            pre_i, z_ti = pre[i, t], z[t, i]
            for j in range(hidden):
                z_ti[j] = tanh(pre_i[j] + b[j])


@nb.njit(cache=True, boundscheck=False, nogil=True)
def _backward(d_z, x, w, z, d_pre, d_x, d_w, d_b):  # pragma: no cover - numba
    """From ``d_z`` ``[T, B, H]``: ``d_pre`` ``[B, T, H]`` (scratch) ← ``d_z ⊙ (1 − z²)``, then
    ``d_w``, ``d_b`` and, unless it is empty, ``d_x`` ``[B, T, F]``."""
    batch, steps, n_in = x.shape
    hidden = w.shape[0]
    one = np.float32(1.0)
    d_b[:] = 0
    for t in range(steps):
        for i in range(batch):
            d_z_ti, z_ti, d_pre_i = d_z[t, i], z[t, i], d_pre[i, t]
            for j in range(hidden):
                d_pre_i[j] = d_z_ti[j] * (one - z_ti[j] * z_ti[j])  # through tanh
                d_b[j] += d_pre_i[j]
    flat_x, flat_d_pre = x.reshape(batch * steps, n_in), d_pre.reshape(batch * steps, hidden)
    scratch = np.empty(10, np.float32)
    matmul(flat_d_pre, True, flat_x, False, d_w, np.float32(0.0), scratch)
    if d_x.size:
        flat_d_x = d_x.reshape(batch * steps, n_in)
        matmul(flat_d_pre, False, w, False, flat_d_x, np.float32(0.0), scratch)
