"""Adam whose CPU step is one compiled call: ``torch.optim.Adam``'s results, bit for bit."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numba as nb
import numpy as np
import torch
from torch import nn
from torch.autograd.graph import increment_version

from alstm.model import kernels
from alstm.model.kernels import float32_array, fma, sqrt


class CompiledAdam(torch.optim.Adam):
    """``torch.optim.Adam`` whose step, for float32 CPU parameters and the options Qlib uses (no
    weight decay, AMSGrad, maximize, capturable, differentiable or fused), is one compiled call
    over all parameters; anything else runs torch's own step. State and ``state_dict`` are
    torch's.

    Why: torch's step is ~9 calls over the parameter list and ~300 µs of Python. Right after a
    batch's passes have filled the caches, it took 0.62 ms of each ~20 ms Alpha158 training
    batch (15 parameters, 55k values); this one takes 0.37 ms there (52 against 179 µs warm),
    and a training pass 12.13 instead of 12.52 s (means of four epochs each, interleaved).

    The float operations are torch's, in its order and with its roundings: the first moment by
    ``lerp_`` (one fused multiply-add, as torch's CPU kernel computes it), the second by
    ``mul_`` then ``addcmul_`` (also fused), √ by the oneMKL routine torch's ``sqrt`` calls, then
    ``div_``, ``add_`` of ε and ``addcdiv_``. A test compares hundreds of steps bit for bit; if
    this torch's ``sqrt`` ever differs from that routine, torch's step runs instead.
    """

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One Adam step on the parameters that have a gradient."""
        groups = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            groups.append((group, params, [(p.grad,) for p in params]))
        if closure is not None or not all(self._compiles(*g) for g in groups):
            return super().step(closure)
        for group, params, grads in groups:
            if params:
                self._step_group(group, params, grads, np.inf)
        return None

    @torch.no_grad()
    def step_sums(
        self, params: Sequence[torch.Tensor], grads: Sequence[Sequence[torch.Tensor]], clip: float
    ) -> bool:
        """``clipped_step``'s compiled path: True when it stepped, False (nothing done) when
        ``params`` are not exactly the one parameter group or the step would not compile."""
        if len(self.param_groups) != 1:
            return False
        group = self.param_groups[0]
        if len(group["params"]) != len(params) or any(
            a is not b for a, b in zip(group["params"], params, strict=True)
        ):
            return False
        if not self._compiles(group, params, grads):
            return False
        self._step_group(group, params, grads, clip)
        for p in params:
            p.grad = None
        return True

    def _compiles(
        self,
        group: dict[str, Any],
        params: Sequence[torch.Tensor],
        grads: Sequence[Sequence[torch.Tensor]],
    ) -> bool:
        """True when the compiled step stands in for torch's on ``group``, whose parameters
        ``params`` have the gradients ``grads`` (one or more summands each)."""
        f32 = torch.float32
        return (
            _sqrt_matches_torch()
            and _step_dtype() is f32
            and not any(group[k] for k in ("amsgrad", "maximize", "capturable", "differentiable"))
            and not group["fused"]
            and group["weight_decay"] == 0
            and all(type(v) in (float, int) for v in (group["lr"], *group["betas"], group["eps"]))
            and all(p.dtype is f32 and p.is_cpu and p.is_contiguous() for p in params)
            and all(
                g.dtype is f32 and g.is_cpu and g.layout is torch.strided and g.is_contiguous()
                for per_slice in grads
                for g in per_slice
            )
            # a loaded state can hold a float64 step counter; its moments have the parameter's
            # dtype and device (torch casts them)
            and all(
                not (state := self.state[p])
                or (
                    state["step"].dtype is f32
                    and state["step"].is_cpu
                    and state["exp_avg"].is_contiguous()
                    and state["exp_avg_sq"].is_contiguous()
                )
                for p in params
            )
        )

    def _step_group(
        self,
        group: dict[str, Any],
        params: Sequence[torch.Tensor],
        grads: Sequence[Sequence[torch.Tensor]],
        clip: float,
    ) -> None:
        """The compiled step on ``params`` (of ``group``), with gradients the sums of ``grads``
        clamped to ±``clip``; starts the optimizer states where empty."""
        states = [self.state[p] for p in params]
        for p, state in zip(params, states, strict=True):
            if not state:  # as torch's Adam starts a parameter's state
                state["step"] = torch.tensor(0.0, dtype=_step_dtype())
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        mutated = [
            (p, state["exp_avg"], state["exp_avg_sq"], state["step"])
            for p, state in zip(params, states, strict=True)
        ]
        table = np.array(
            [
                [t.data_ptr() for t in (*tensors, *per_slice)]
                for tensors, per_slice in zip(mutated, grads, strict=True)
            ],
            np.int64,
        )
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        # t: the step about to be taken (the kernel adds it to each counter), read from the
        # counters at once (``.item()`` on each took ~5 µs between batches)
        scalars = np.array(
            [
                (
                    1 - beta1,
                    beta2,
                    1 - beta2,
                    (1 - beta2**t) ** 0.5,
                    eps,
                    (lr / (1 - beta1**t)) * -1,
                )
                for t in (_counters(table[:, 3]) + np.float32(1.0)).tolist()
            ],
            np.float32,  # rounded as torch rounds the scalars it is given
        )
        sizes = np.array([p.numel() for p in params], np.int64)
        _adam_step(table, sizes, scalars, np.float32(clip))
        # written through their addresses, unseen by autograd's checks of in-place changes
        increment_version([t for tensors in mutated for t in tensors])


def clipped_step(
    optimizer: torch.optim.Optimizer,
    params: Sequence[torch.Tensor],
    grads: Sequence[Sequence[torch.Tensor]],
    clip: float,
) -> None:
    """One ``optimizer`` step on ``params`` whose gradients are the sums of their ``grads``
    (each parameter's gradients from a batch's slices, added in order) clamped to ±``clip``:
    ``p.grad = g₀ + g₁ + …``, ``nn.utils.clip_grad_value_``, ``optimizer.step()``, then ``.grad``
    None again, bit for bit; for a ``CompiledAdam`` one compiled call that reads ``grads`` only.

    Why: between two training batches the sums, the clip and torch's step ran as ~40 small calls
    on one thread while the other core idled; right after the batch's passes, with the caches
    cold, they took ~0.7 ms of each ~21 ms Alpha158 batch, the compiled call ~0.2 ms."""
    if isinstance(optimizer, CompiledAdam) and optimizer.step_sums(params, grads, clip):
        return
    for p, per_slice in zip(params, grads, strict=True):
        p.grad = functools.reduce(operator.add, per_slice)
    nn.utils.clip_grad_value_(params, clip)
    optimizer.step()
    for p in params:
        p.grad = None


def _step_dtype() -> torch.dtype:
    """The dtype of torch's Adam step counter (non-fused)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


@functools.cache
def _sqrt_matches_torch() -> bool:
    """True when oneMKL is at hand and its √ gives torch's ``sqrt`` bit for bit (on values
    where it differs from the correctly rounded one)."""
    if kernels.VSQRT is None:
        return False
    x = np.random.default_rng(0).random(4096, dtype=np.float32)
    out = np.empty_like(x)
    _sqrt(x, out)
    return torch.equal(torch.from_numpy(out), torch.from_numpy(x).sqrt())


@nb.njit(cache=True, nogil=True)
def _sqrt(x, out):  # pragma: no cover - numba
    sqrt(x, out, np.empty(2, np.int64))


@nb.njit(cache=True, nogil=True)
def _counters(addresses):  # pragma: no cover - numba
    """The float32 values at ``addresses`` (int64 ``[K]``) as an array ``[K]``."""
    out = np.empty(len(addresses), np.float32)
    for k in range(len(addresses)):
        out[k] = float32_array(addresses[k], 1)[0]
    return out


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _adam_step(table, sizes, scalars, clip):  # pragma: no cover - numba
    """Adam's step t of parameter k with gradient g = clamp(g₀ + g₁ + …, ±clip). ``table[k]``:
    addresses of the parameter, its two moments, its float32 step counter (which goes up by
    one) and its gradient summands (only read); ``sizes[k]`` values; ``scalars[k]``: 1 − β1,
    β2, 1 − β2, √(1 − β2^t), ε, −lr / (1 − β1^t)."""
    scratch = np.empty(2, np.int64)
    total = np.empty(sizes.max(), np.float32)  # the gradient
    root = np.empty(sizes.max(), np.float32)  # √ of the second moment
    for k in range(len(sizes)):
        float32_array(table[k, 3], 1)[0] += np.float32(1.0)
        n = sizes[k]
        param, avg = float32_array(table[k, 0], n), float32_array(table[k, 1], n)
        avg_sq, grad = float32_array(table[k, 2], n), total[:n]
        grad[:] = float32_array(table[k, 4], n)
        for c in range(5, table.shape[1]):  # in slice order, as torch adds them
            summand = float32_array(table[k, c], n)
            for i in range(n):
                grad[i] = grad[i] + summand[i]
        weight, beta2, scale2 = scalars[k, 0], scalars[k, 1], scalars[k, 2]
        root_correction2, eps, step_size = scalars[k, 3], scalars[k, 4], scalars[k, 5]
        # torch's lerp(m, g, w): m + w (g − m) for |w| < 0.5, else g − (1 − w)(g − m)
        small = abs(weight) < np.float32(0.5)
        coeff = weight if small else weight - np.float32(1.0)
        for i in range(n):
            g = grad[i]
            # clamp_min then clamp_max, as clip_grad_value_; NaN stays NaN, as in torch
            g = -clip if g < -clip else g
            g = clip if g > clip else g
            m = avg[i]
            avg[i] = fma(coeff, g - m, m if small else g)
            avg_sq[i] = fma(scale2 * g, g, avg_sq[i] * beta2)
        r = root[:n]
        sqrt(avg_sq, r, scratch)
        for i in range(n):
            param[i] = param[i] + step_size * avg[i] / (r[i] / root_correction2 + eps)
