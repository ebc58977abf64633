"""ALSTMNet's attention pooling and output layer as one compiled pass each way, on one CPU thread.

The same math as the torch ops in ``ALSTMNet.forward``, for the GRU's outputs ``out``
``[T, B, H]``: ``a = tanh(out W₁ᵀ + b₁)``, ``s = a w₂ᵀ``, attention ``w = softmax_t(s)``,
``pooled = Σ_t w_t ⊙ out_t`` and ``score = [out_{T−1}, pooled] w_hᵀ + b_h`` (``head="both"``;
``"attention"`` reads ``pooled`` alone), with its gradients written out by hand. It agrees with
the torch ops to float32 rounding.

Why: in torch these are ~15 small ops forward and ~30 backward (each a dispatch, an allocation
and a pass over memory, three of them batched products of 400 ``[1, T] × [T, H]`` matrices at
~260 µs each), 3–4 ms of a 400-row Alpha158 training slice whose GRU takes ~15 ms. Here the
two products with ``W₁`` go to oneMKL (``kernels.matmul``) and the rest is a few loops, with no
Python in between and the GIL released. Used where ``cpu_gru`` runs a layer as one compiled call
(oneMKL at hand, one torch thread); elsewhere ``ALSTMNet`` runs the torch ops.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import torch
from torch import nn

from alstm.model.kernels import compiled_here, matmul, tanh


def cpu_attention_applies(out: torch.Tensor, dropout: nn.Dropout) -> bool:
    """True when ``attention_head`` can stand in for the torch ops: where the compiled passes
    run (``kernels.compiled_here``), with no attention dropout to draw (eval mode or ``p=0``)."""
    return compiled_here(out) and (not dropout.training or dropout.p == 0)


def attention_head(
    out: torch.Tensor, hidden: nn.Linear, score: nn.Linear, head: nn.Linear
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores ``[B]`` and attention weights ``[T, B]`` (not differentiable) for GRU outputs
    ``out`` ``[T, B, H]``: ``hidden`` is ``Linear(H → H₂)``, ``score`` ``Linear(H₂ → 1)``
    without bias, ``head`` ``Linear(2H → 1)`` on ``[out[-1], pooled]`` or ``Linear(H → 1)``
    on ``pooled``."""
    return _AttentionHead.apply(
        out.contiguous(), hidden.weight, hidden.bias, score.weight, head.weight, head.bias
    )


class _AttentionHead(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        out: torch.Tensor,
        w1: torch.Tensor,
        b1: torch.Tensor,
        w2: torch.Tensor,
        wh: torch.Tensor,
        bh: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        steps, batch, hidden = out.shape
        a = out.new_empty(steps * batch, w1.shape[0])  # torch's memory: 64-byte aligned
        weights = out.new_empty(steps, batch)
        pooled = out.new_empty(batch, hidden)
        scores = out.new_empty(batch)
        arrays = (out, w1, b1, w2, wh, bh, a, weights, pooled, scores)
        _forward(*(t.detach().numpy() for t in arrays))
        ctx.save_for_backward(out, w1, w2, wh, a, weights, pooled)
        ctx.mark_non_differentiable(weights)
        return scores, weights

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, d_scores: torch.Tensor, _: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        out, w1, w2, wh, a, weights, pooled = ctx.saved_tensors
        d_out, d_w1, d_w2, d_wh, d_a = map(torch.empty_like, (out, w1, w2, wh, a))
        d_b1, d_bh = out.new_empty(w1.shape[0]), out.new_empty(1)
        grads = (d_out, d_w1, d_b1, d_w2, d_wh, d_bh)
        arrays = (d_scores.contiguous(), out, w1, w2, wh, a, weights, pooled, *grads, d_a)
        _backward(*(t.detach().numpy() for t in arrays))
        return grads


@nb.njit(cache=True, boundscheck=False, nogil=True, fastmath={"reassoc"})
def _dot(x, y):  # pragma: no cover - numba
    """``x · y`` for float32 vectors, summed in vector lanes (``reassoc``: otherwise one
    addition waits for the previous one)."""
    total = np.float32(0.0)
    for j in range(len(x)):
        total += x[j] * y[j]
    return total


@nb.njit(cache=True, boundscheck=False, nogil=True, error_model="numpy")
def _forward(out, w1, b1, w2, wh, bh, a, weights, pooled, scores):  # pragma: no cover - numba
    """Fills ``a`` ``[T·B, H₂]`` (the attention layer's tanh), ``weights`` ``[T, B]``,
    ``pooled`` ``[B, H]`` and ``scores`` ``[B]``."""
    steps, batch, hidden = out.shape
    flat_out, flat_w = out.reshape(steps * batch, hidden), weights.reshape(steps * batch, 1)
    scratch = np.empty(10, np.float32)
    matmul(flat_out, False, w1, True, a, np.float32(0.0), scratch)
    for i in range(steps * batch):
        a_i = a[i]
        for j in range(a.shape[1]):
            a_i[j] = tanh(a_i[j] + b1[j])
    matmul(a, False, w2, True, flat_w, np.float32(0.0), scratch)  # the scores s, for now
    for b in range(batch):  # softmax over time
        top = weights[0, b]
        for t in range(1, steps):
            top = max(top, weights[t, b])
        total = np.float32(0.0)
        for t in range(steps):
            weights[t, b] = np.exp(weights[t, b] - top)
            total += weights[t, b]
        for t in range(steps):
            weights[t, b] /= total
    pooled[:] = 0
    for t in range(steps):
        for b in range(batch):
            w, out_tb, pooled_b = weights[t, b], out[t, b], pooled[b]
            for j in range(hidden):
                pooled_b[j] += w * out_tb[j]
    off = wh.shape[1] - hidden  # head "both" reads [out[-1], pooled], "attention" pooled
    for b in range(batch):
        s = bh[0] + _dot(wh[0, off:], pooled[b])
        scores[b] = s + _dot(wh[0, :off], out[steps - 1, b]) if off else s


@nb.njit(cache=True, boundscheck=False, nogil=True, error_model="numpy")
def _backward(
    d_scores, out, w1, w2, wh, a, weights, pooled, d_out, d_w1, d_b1, d_w2, d_wh, d_bh, d_a
):  # pragma: no cover - numba
    """Gradients of ``_forward``'s inputs from ``d_scores`` ``[B]``: fills ``d_out``, ``d_w1``,
    ``d_b1``, ``d_w2``, ``d_wh``, ``d_bh``; ``d_a`` ``[T·B, H₂]`` is scratch."""
    steps, batch, hidden = out.shape
    off = wh.shape[1] - hidden  # where pooled's weights start in the head
    wp = wh[0, off:]
    d_bh[0] = 0
    d_wh[:] = 0
    for b in range(batch):
        g = d_scores[b]
        d_bh[0] += g
        for j in range(hidden):
            d_wh[0, off + j] += g * pooled[b, j]
        for j in range(off):
            d_wh[0, j] += g * out[steps - 1, b, j]
    d_w2[:] = 0
    d_b1[:] = 0
    d_weights = np.empty(steps, np.float32)
    one = np.float32(1.0)
    for b in range(batch):
        g = d_scores[b]  # d pooled[b] = g · wp
        mean = np.float32(0.0)
        for t in range(steps):
            d_weights[t] = g * _dot(out[t, b], wp)
            mean += weights[t, b] * d_weights[t]
        for t in range(steps):
            w = weights[t, b]
            d_s = w * (d_weights[t] - mean)  # back through the softmax
            a_i, d_a_i = a[t * batch + b], d_a[t * batch + b]
            for j in range(a.shape[1]):
                d_w2[0, j] += d_s * a_i[j]
                d_a_i[j] = d_s * w2[0, j] * (one - a_i[j] * a_i[j])  # back through tanh
                d_b1[j] += d_a_i[j]
            d_out_tb, gw = d_out[t, b], g * w
            for j in range(hidden):
                d_out_tb[j] = gw * wp[j]
        for j in range(off):
            d_out[steps - 1, b, j] += g * wh[0, j]
    flat_out, flat_d_out = out.reshape(steps * batch, hidden), d_out.reshape(steps * batch, hidden)
    scratch = np.empty(10, np.float32)
    matmul(d_a, True, flat_out, False, d_w1, np.float32(0.0), scratch)
    matmul(d_a, False, w1, False, flat_d_out, np.float32(1.0), scratch)
