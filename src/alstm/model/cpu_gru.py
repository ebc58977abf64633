"""A faster GRU for the CPU: ``torch.nn.GRU``'s math with a hand-written backward through time.

Same equations and gate order as ``nn.GRU`` (r, z, n): ``r = σ(W_ir x + b_ir + W_hr h + b_hr)``,
``z`` likewise, ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``, ``h' = (1 − z) ⊙ n + z ⊙ h``;
outputs and gradients agree with ``nn.GRU`` to float32 rounding (~1e-7).

Why: on a CPU, ``nn.GRU`` records ~20 small autograd ops per time step. Here no autograd
graph is built inside the loop, and the backward's elementwise work per step is one compiled
loop.

On one torch thread (training with ``batch_threads`` > 1, where each thread runs a slice of the
batch), a layer's whole forward and whole backward are each one compiled call: the products go
to the oneMKL that torch carries (its Fortran ``sgemm_``, on its AVX-512 kernels through
``alstm.mkl_path``: as fast as oneDNN), so no Python runs per step and the GIL is released for
the whole layer. On the Alpha158 benchmark (batch 800 as 2 × 400 rows, 20 steps, 2 layers) a
training pass took 14.8–15.2 s against 16.8–18.2 s with a Python loop over steps (alternating
runs): the two batch threads no longer wait for each other's Python. On several torch threads
(or a torch without oneMKL) the loop over steps stays in Python, with torch's products (oneDNN's
AVX-512 ones in the forward, where they beat MKL's generic kernels on AMD CPUs) and the forward's
elementwise work as torch ops, which split each step across the threads.
Used for GRUs on the CPU without inter-layer dropout in training; everything else runs
``nn.GRU``.

With ``bf16`` (``ALSTM(precision="bfloat16")``, an addition) the products round their operands
to bfloat16 and add in float32, everything else as above. On the Zen 4 EPYC of the last
benchmarks, one thread, a slice of 400 rows (2 layers, 20 steps): the GRU's forward and
backward 19.1–19.4 ms against 28.9–29.0 ms in float32.
"""

from __future__ import annotations

from collections.abc import Callable

import numba as nb
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from alstm.model.activations import tanh_
from alstm.model.kernels import GEMM_BF16, as_operand, compiled_here, matmul, sigmoid, tanh

Linear = Callable[..., torch.Tensor]


def _onednn_linear() -> Linear | None:
    """oneDNN's ``x @ w.T + b`` if this torch build has it (it is an internal op of torch)."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        op = torch.ops.mkldnn._linear_pointwise.default
    except (AttributeError, RuntimeError):
        return None

    def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        return op(x, w, b, "none", [], "")

    return linear


_LINEAR: Linear = _onednn_linear() or F.linear


def cpu_gru_applies(rnn: nn.Module, x: torch.Tensor) -> bool:
    """True when ``gru_forward`` can stand in for ``rnn(x)``: a unidirectional GRU with biases,
    on float32 CPU tensors, with no inter-layer dropout to draw (eval mode or ``dropout=0``)."""
    return (
        isinstance(rnn, nn.GRU)
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and rnn.bias
        and not rnn.bidirectional
        and not rnn.batch_first
        and (not rnn.training or rnn.dropout == 0 or rnn.num_layers == 1)
    )


def gru_forward(rnn: nn.GRU, x: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    """``rnn(x)[0]`` for time-major ``x`` ``[T, B, input]`` → ``[T, B, hidden]``, zero initial
    state (``rnn.batch_first`` must be False). ``bf16``: the matrix products (forward and
    backward) take their operands rounded to bfloat16 and add in float32; everything else stays
    float32. In the compiled passes they run on oneMKL's bfloat16 product, about twice as fast
    as its float32 one on a CPU with AVX512-BF16 (``kernels.GEMM_BF16``)."""
    out = x.contiguous()
    for layer in range(rnn.num_layers):
        params = [getattr(rnn, f"{name}_l{layer}") for name in _PARAM_NAMES]
        if torch.is_grad_enabled():
            out = _GRULayer.apply(out, *params, bf16)
        else:  # inference: nothing to keep for a backward pass
            out = _layer_forward(out, *params, keep=False, bf16=bf16)[0][1:]
    return out


def _operand(a: torch.Tensor, bf16: bool, compiled: bool) -> torch.Tensor:
    """``a`` as the products take it: itself, or with ``bf16`` its bfloat16 rounding, as int16
    bits for the compiled passes (oneMKL's bfloat16 product) and as float32 for torch's (whose
    float32 products of bfloat16 values are exact, so both add the same terms)."""
    if not bf16:
        return a.detach()
    rounded = a.detach().bfloat16()
    return rounded.view(torch.int16) if compiled else rounded.float()


def _operand_buffer(a: torch.Tensor, bf16: bool, compiled: bool) -> torch.Tensor:
    """Where ``a``'s values go as the products take them, step by step: ``a`` itself, or with
    ``bf16`` a zeroed tensor of ``a``'s shape in ``_operand``'s format."""
    if not bf16:
        return a
    return torch.zeros(a.shape, dtype=torch.int16 if compiled else a.dtype)


def _compiled(x: torch.Tensor, bf16: bool) -> bool:
    """True when a layer runs as compiled calls (``kernels.compiled_here``, and with ``bf16``
    oneMKL's bfloat16 product at hand)."""
    return compiled_here(x) and (GEMM_BF16 is not None or not bf16)


def _arrays(*tensors: torch.Tensor) -> list[np.ndarray]:
    """The tensors' numpy views, int16 ones (bfloat16 bits) as uint16."""
    views = [t.detach().numpy() for t in tensors]
    return [v.view(np.uint16) if v.dtype == np.int16 else v for v in views]


_PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _layer_forward(
    x: torch.Tensor,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    keep: bool,
    bf16: bool = False,
) -> tuple[torch.Tensor, ...]:
    """One layer over ``x`` ``[T, B, in]``: ``out`` ``[T + 1, B, H]`` (``out[0]`` the zero initial
    state, ``out[t + 1]`` the output of step t), and when ``keep`` what the backward needs: the
    gates ``rz`` ``[T, B, 2H]`` (σ of reset and update), ``n`` ``[T, B, H]`` (candidate state),
    ``rgh`` ``[T, B, H]`` (``r ⊙ (W_hn h + b_hn)``), and ``x`` and ``out`` as the products took
    them (``_operand``; the same tensors without ``bf16``)."""
    steps, batch, _ = x.shape
    hidden = w_hh.shape[1]
    out = x.new_empty(steps + 1, batch, hidden)
    out[0].zero_()
    shapes = ((steps, batch, 2 * hidden), (steps, batch, hidden), (steps, batch, hidden))
    # without keep, each step's gates go to one scratch set (kept hot in cache) and are dropped
    saved = [x.new_empty(shape if keep else (1, *shape[1:])) for shape in shapes]
    compiled = _compiled(x, bf16)
    x_q, w_ih_q, w_hh_q = (_operand(a, bf16, compiled) for a in (x, w_ih, w_hh))
    out_q = _operand_buffer(out, bf16, compiled)
    if compiled:
        # torch's allocations are 64-byte aligned: oneMKL's results can depend on alignment
        gi, gh = (x.new_empty(batch, 3 * hidden) for _ in range(2))
        arrays = (x_q, w_ih_q, w_hh_q, b_ih, b_hh, out, out_q, *saved, gi, gh)
        _layer_forward_compiled(*_arrays(*arrays))
    else:
        for t in range(steps):
            gi = _LINEAR(x_q[t], w_ih_q, b_ih)
            gh = _LINEAR(out_q[t], w_hh_q, b_hh)
            _torch_step(gi, gh, out[t], out[t + 1], *(a[t if keep else 0] for a in saved))
            if bf16:
                out_q[t + 1] = out[t + 1].bfloat16()
    return (out, *saved, x_q, out_q) if keep else (out,)


def _torch_step(
    gi: torch.Tensor,
    gh: torch.Tensor,
    h: torch.Tensor,
    h_next: torch.Tensor,
    rz: torch.Tensor,
    n: torch.Tensor,
    rgh: torch.Tensor,
) -> None:
    """``_step_forward`` in torch ops (torch's σ; the same ``tanh``), biases already in ``gi``
    and ``gh``."""
    hidden = h.shape[1]
    torch.add(gi[:, : 2 * hidden], gh[:, : 2 * hidden], out=rz).sigmoid_()
    torch.mul(rz[:, :hidden], gh[:, 2 * hidden :], out=rgh)
    tanh_(torch.add(gi[:, 2 * hidden :], rgh, out=n))
    torch.addcmul(n, rz[:, hidden:], h - n, out=h_next)


class _GRULayer(torch.autograd.Function):
    """One GRU layer over a whole sequence with the hand-written backward."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        b_ih: torch.Tensor,
        b_hh: torch.Tensor,
        bf16: bool,
    ) -> torch.Tensor:
        out, rz, n, rgh, x_q, out_q = _layer_forward(x, w_ih, w_hh, b_ih, b_hh, True, bf16)
        ctx.save_for_backward(x, w_ih, w_hh, out, rz, n, rgh, x_q, out_q)
        ctx.bf16 = bf16
        return out[1:]

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, d_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, w_ih, w_hh, out, rz, n, rgh, x_q, out_q = ctx.saved_tensors
        steps, batch, n_in = x.shape
        hidden = w_hh.shape[1]
        d_out = d_out.contiguous()
        dx = x.new_empty(steps, batch, n_in)
        dh = x.new_zeros(batch, hidden)  # gradient reaching h_t from later steps
        # one step's gate gradients [dn, dr, dz, dn ⊙ r]: d(W_h· h + b_h·) is its last three
        # blocks (r, z, n order) and d(W_i· x + b_i·) its first three, in n, r, z order, so the
        # products take both as views, with W_ih's blocks in the same order
        d = x.new_empty(batch, 4 * hidden)
        w_ih_p = torch.cat((w_ih[2 * hidden :], w_ih[: 2 * hidden])).detach()
        dw_ih_p, dw_hh = torch.zeros_like(w_ih_p), torch.zeros_like(w_hh)
        db = np.zeros(4 * hidden)  # float64 column sums of d
        compiled = _compiled(x, ctx.bf16)
        w_ih_pq, w_hh_q = (_operand(w, ctx.bf16, compiled) for w in (w_ih_p, w_hh))
        d_q = _operand_buffer(d, ctx.bf16, compiled)
        if compiled:
            arrays = (d_out, x_q, w_ih_pq, w_hh_q, out, out_q, rz, n, rgh, dx, dw_ih_p, dw_hh)
            _layer_backward_compiled(*_arrays(*arrays, dh, d, d_q), db)
        else:
            arrays = [a.numpy() for a in (d_out, rz, n, rgh, out, dh, d)]
            dgi, dgh = d_q[:, : 3 * hidden], d_q[:, hidden:]
            for t in range(steps - 1, -1, -1):
                _step_backward(t, *arrays, db)
                if ctx.bf16:
                    d_q.copy_(d.bfloat16())
                dh.addmm_(dgh, w_hh_q)
                torch.mm(dgi, w_ih_pq, out=dx[t])
                dw_hh.addmm_(dgh.t(), out_q[t])
                dw_ih_p.addmm_(dgi.t(), x_q[t])
        dw_ih = torch.cat((dw_ih_p[hidden:], dw_ih_p[:hidden]))
        db_ih = torch.from_numpy(np.concatenate([db[hidden : 3 * hidden], db[:hidden]]))
        db_hh = torch.from_numpy(db[hidden:])
        return dx, dw_ih, dw_hh, db_ih.float(), db_hh.float(), None


@nb.njit(cache=True, boundscheck=False, nogil=True)
def _layer_forward_compiled(
    x, w_ih, w_hh, b_ih, b_hh, out, out_q, rz, n, rgh, gi, gh
):  # pragma: no cover - numba
    """``_layer_forward``'s loop in one compiled call (no Python or GIL per step); gates go to
    ``rz[t]``, ``n[t]``, ``rgh[t]``, or to their only row when they have one. The products
    read ``x``, ``w_ih``, ``w_hh`` and ``out_q`` (``out`` itself, or its bfloat16 rounding kept
    step by step: ``kernels.as_operand``)."""
    scratch = np.empty(10, np.float32)
    zero = np.float32(0.0)
    for t in range(x.shape[0]):
        matmul(x[t], False, w_ih, True, gi, zero, scratch)
        matmul(out_q[t], False, w_hh, True, gh, zero, scratch)
        k = t if rz.shape[0] > 1 else 0
        _step_forward(gi, gh, b_ih, b_hh, out[t], out[t + 1], rz[k], n[k], rgh[k])
        as_operand(out[t + 1], out_q[t + 1])


@nb.njit(cache=True, boundscheck=False, nogil=True)
def _layer_backward_compiled(
    d_out, x, w_ih_p, w_hh, out, out_q, rz, n, rgh, dx, dw_ih_p, dw_hh, dh, d, d_q, db
):  # pragma: no cover - numba
    """``_GRULayer.backward``'s loop in one compiled call: fills ``dx``, adds into ``dw_ih_p``
    (blocks n, r, z), ``dw_hh`` and ``db`` (which start at zero) and uses ``dh``, ``d`` and
    ``d_q`` (``d`` as the products' operand, ``kernels.as_operand``) as scratch."""
    scratch = np.empty(10, np.float32)
    zero, one = np.float32(0.0), np.float32(1.0)
    hidden = dh.shape[1]
    dgi, dgh = d_q[:, : 3 * hidden], d_q[:, hidden:]
    for t in range(x.shape[0] - 1, -1, -1):
        _step_backward(t, d_out, rz, n, rgh, out, dh, d, db)
        as_operand(d, d_q)
        matmul(dgh, False, w_hh, False, dh, one, scratch)
        matmul(dgi, False, w_ih_p, False, dx[t], zero, scratch)
        matmul(dgh, True, out_q[t], False, dw_hh, one, scratch)
        matmul(dgi, True, x[t], False, dw_ih_p, one, scratch)


@nb.njit(cache=True, boundscheck=False, nogil=True, error_model="numpy")
def _step_forward(gi, gh, b_ih, b_hh, h, h_next, rz, n, rgh):  # pragma: no cover - numba
    """One step's gates from ``gi = W_i· x_t`` and ``gh = W_h· h`` ``[B, 3H]`` (r, z, n blocks),
    the biases ``b_ih``, ``b_hh`` ``[3H]`` and the state ``h`` ``[B, H]``: writes ``h_next`` and
    the gates the backward reads, ``rz`` ``[B, 2H]``, ``n`` and ``rgh`` ``[B, H]`` (tanh as
    ``2σ(2a) − 1``, as ``activations.tanh``). ``error_model="numpy"`` lets the division
    vectorize."""
    batch, hidden = h.shape
    for b in range(batch):
        gi_b, gh_b, h_b, next_b = gi[b], gh[b], h[b], h_next[b]
        rz_b, n_b, rgh_b = rz[b], n[b], rgh[b]
        # the z and n columns' indices stay written out: as named variables (jz = hidden + j)
        # the loop no longer vectorized and ran 10 times slower (measured)
        for j in range(hidden):
            r = sigmoid((gi_b[j] + b_ih[j]) + (gh_b[j] + b_hh[j]))
            z = sigmoid(
                (gi_b[hidden + j] + b_ih[hidden + j]) + (gh_b[hidden + j] + b_hh[hidden + j])
            )
            rg = r * (gh_b[2 * hidden + j] + b_hh[2 * hidden + j])
            nj = tanh((gi_b[2 * hidden + j] + b_ih[2 * hidden + j]) + rg)
            rz_b[j], rz_b[hidden + j], rgh_b[j], n_b[j] = r, z, rg, nj
            next_b[j] = nj + z * (h_b[j] - nj)


@nb.njit(cache=True, boundscheck=False, nogil=True, error_model="numpy")
def _step_backward(t, d_out, rz, n, rgh, out, dh, d, db):  # pragma: no cover - numba
    """Gate gradients of step ``t`` from ``g = dh + d_out[t]`` (the gradient reaching h_t):
    writes ``d`` ``[B, 4H]`` as blocks dn, dr, dz, dn ⊙ r, adds its column sums to ``db``
    ``[4H]`` (the bias gradients) and leaves ``dh = g ⊙ z`` (the direct path to h_{t-1}; the
    caller adds ``d(W_h· h) @ W_hh``).

    Each block is its own view: with the blocks as offsets into one row (``d_b[hidden + j]``)
    or the sums in the same loop, the loop did not vectorize and took 72 instead of 20 µs per
    step at 400 × 64 (measured)."""
    batch, hidden = dh.shape
    one = np.float32(1.0)  # float32 literals keep the loop in float32 (and vectorized)
    for b in range(batch):
        do_b, h_b, n_b, rgh_b = d_out[t, b], out[t, b], n[t, b], rgh[t, b]
        r_b, z_b, dh_b = rz[t, b, :hidden], rz[t, b, hidden:], dh[b]
        dn_b, dr_b, dz_b = d[b, :hidden], d[b, hidden : 2 * hidden], d[b, 2 * hidden : 3 * hidden]
        dnr_b = d[b, 3 * hidden :]
        for j in range(hidden):
            g = dh_b[j] + do_b[j]
            r, z, nj = r_b[j], z_b[j], n_b[j]
            dn = g * (one - z) * (one - nj * nj)  # through tanh
            dn_b[j] = dn
            dr_b[j] = dn * rgh_b[j] * (one - r)  # = dn ⊙ (W_hn h + b_hn) ⊙ r(1 − r)
            dz_b[j] = g * (h_b[j] - nj) * z * (one - z)  # through σ
            dnr_b[j] = dn * r
            dh_b[j] = g * z
    sums = np.zeros(4 * hidden, np.float32)  # this step's, in float32 lanes
    for b in range(batch):
        d_b = d[b]
        for j in range(4 * hidden):
            sums[j] += d_b[j]
    for j in range(4 * hidden):
        db[j] += sums[j]
