"""cpu_adam: the compiled Adam step gives torch's results bit for bit."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from alstm.model import cpu_adam, kernels
from alstm.model.cpu_adam import CompiledAdam

# ALSTM's parameter shapes and odd sizes (vector kernels' remainders, single values)
SHAPES = [(64, 20), (64,), (192, 64), (192,), (1, 128), (1,), (7,), (17,), (33, 3), (5000,)]


def params() -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    return [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in SHAPES]


def run(opt_class: type[torch.optim.Optimizer], steps: int, **kwargs: Any) -> tuple:
    """Parameters and state after ``steps`` steps on gradients of magnitudes 1e-8 … 10."""
    ps = params()
    opt = opt_class(ps, **kwargs)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in ps:
            scale = 10.0 ** torch.randint(-8, 2, (), generator=gen).item()
            p.grad = torch.randn(p.shape, generator=gen) * scale
        opt.step()
    return ps, [opt.state[p] for p in ps], opt


needs_vml = pytest.mark.skipif(
    not cpu_adam._sqrt_matches_torch(), reason="no oneMKL √ matching torch's here"
)


@needs_vml
@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 1e-3},
        {"lr": 0.05, "betas": (0.3, 0.99), "eps": 1e-6},  # β1 < 0.5: lerp's other branch
        {"lr": 2e-4, "foreach": True},
    ],
)
def test_steps_equal_torchs_bit_for_bit(kwargs: dict[str, Any]) -> None:
    ours, our_state, _ = run(CompiledAdam, 300, **kwargs)
    theirs, their_state, _ = run(torch.optim.Adam, 300, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    for a, b in zip(our_state, their_state, strict=True):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


@needs_vml
def test_the_step_is_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    step = cpu_adam._adam_step
    monkeypatch.setattr(cpu_adam, "_adam_step", lambda *a: calls.append(1) or step(*a))
    run(CompiledAdam, 3, lr=1e-3)
    assert len(calls) == 3


def test_vml_sqrt_is_the_one_torch_uses() -> None:
    """The check that gates the compiled step: where it passes, √ differs from numpy's
    correctly rounded one on some of the probe's values (so the check can fail)."""
    if kernels.VSQRT is None:
        assert not cpu_adam._sqrt_matches_torch()
        return
    x = np.random.default_rng(0).random(4096, dtype=np.float32)
    out = np.empty_like(x)
    cpu_adam._sqrt(x, out)
    if cpu_adam._sqrt_matches_torch():
        assert (out != np.sqrt(x)).any()


@pytest.mark.parametrize(
    "kwargs",
    [{"amsgrad": True}, {"weight_decay": 0.1}, {"maximize": True}, {"lr": torch.tensor(1e-3)}],
)
def test_other_options_run_torchs_step(
    kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cpu_adam, "_adam_step", lambda *a: pytest.fail("compiled step ran"))
    ours, *_ = run(CompiledAdam, 20, **{"lr": 1e-3, **kwargs})
    theirs, *_ = run(torch.optim.Adam, 20, **{"lr": 1e-3, **kwargs})
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_without_onemkl_sqrt_torchs_step_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_adam, "_sqrt_matches_torch", lambda: False)
    monkeypatch.setattr(cpu_adam, "_adam_step", lambda *a: pytest.fail("compiled step ran"))
    ours, *_ = run(CompiledAdam, 5, lr=1e-3)
    theirs, *_ = run(torch.optim.Adam, 5, lr=1e-3)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


@needs_vml
def test_state_dict_continues_in_torchs_adam_and_back() -> None:
    ps, _, ours = run(CompiledAdam, 10, lr=1e-3)
    twin = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    theirs = torch.optim.Adam(twin, lr=1e-3)
    theirs.load_state_dict(copy.deepcopy(ours.state_dict()))  # loading shares tensors
    back = CompiledAdam(ps, lr=1e-3)
    back.load_state_dict(copy.deepcopy(theirs.state_dict()))
    gen = torch.Generator().manual_seed(2)
    for _ in range(10):
        for p, q in zip(ps, twin, strict=True):
            p.grad = torch.randn(p.shape, generator=gen)
            q.grad = p.grad.clone()
        back.step()
        theirs.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, twin, strict=True))


@needs_vml
def test_autograd_sees_the_in_place_update() -> None:
    """A graph that saved a parameter refuses its backward after a step, as with torch's."""
    p = torch.nn.Parameter(torch.ones(3))
    loss = (p * p).sum()  # saves p
    p.grad = torch.ones(3)
    CompiledAdam([p], lr=0.1).step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@needs_vml
def test_parameters_without_gradient_are_left_alone() -> None:
    ps = params()
    before = [p.detach().clone() for p in ps]
    ps[0].grad = torch.ones_like(ps[0])
    opt = CompiledAdam(ps, lr=1e-3)
    opt.step()
    assert not torch.equal(ps[0], before[0])
    assert all(torch.equal(p, b) for p, b in zip(ps[1:], before[1:], strict=True))
    assert list(opt.state) == [ps[0]]


@needs_vml
def test_a_loaded_float64_step_counter_runs_torchs_step(monkeypatch: pytest.MonkeyPatch) -> None:
    ps, _, ours = run(CompiledAdam, 3, lr=1e-3)
    saved = copy.deepcopy(ours.state_dict())
    for state in saved["state"].values():
        state["step"] = state["step"].double()  # as saved under torch.float64 as default dtype
    twin = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    theirs = torch.optim.Adam(twin, lr=1e-3)
    theirs.load_state_dict(copy.deepcopy(saved))
    ours.load_state_dict(saved)
    monkeypatch.setattr(cpu_adam, "_adam_step", lambda *a: pytest.fail("compiled step ran"))
    for p, q in zip(ps, twin, strict=True):
        p.grad = torch.ones_like(p)
        q.grad = torch.ones_like(q)
    ours.step()
    theirs.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, twin, strict=True))


def clipped_run(
    opt_class: type[torch.optim.Optimizer],
    summands: int,
    steps: int,
    subset: bool = False,
    clip: float = 3.0,
) -> tuple:
    """``run`` through ``clipped_step``: each gradient the sum of ``summands`` parts, clipped to
    ±3 (values up to ~30 before clipping); ``subset``: step only some of the parameters."""
    ps = params()
    opt = opt_class(ps, lr=1e-3)
    stepped = ps[::2] if subset else ps
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        grads = [
            tuple(torch.randn(p.shape, generator=gen) * 10.0 for _ in range(summands))
            for p in stepped
        ]
        cpu_adam.clipped_step(opt, stepped, grads, clip)
    assert all(p.grad is None for p in ps)
    return ps, [opt.state[p] for p in stepped]


@needs_vml
@pytest.mark.parametrize("summands", [1, 2, 3])
def test_clipped_step_is_sum_clip_and_torchs_step(
    summands: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    kernel = cpu_adam._adam_step
    monkeypatch.setattr(cpu_adam, "_adam_step", lambda *a: calls.append(1) or kernel(*a))
    ours, our_state = clipped_run(CompiledAdam, summands, 50)
    assert len(calls) == 50
    theirs, their_state = clipped_run(torch.optim.Adam, summands, 50)
    assert len(calls) == 50  # torch's Adam: sums, clip_grad_value_ and its step
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    unclipped, _ = clipped_run(torch.optim.Adam, summands, 50, clip=np.inf)
    assert not any(torch.equal(a, b) for a, b in zip(ours, unclipped, strict=True))
    for a, b in zip(our_state, their_state, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


@needs_vml
def test_clipped_step_on_some_parameters_sets_grads_then_steps() -> None:
    """Not the whole parameter group: the gradients are set and clipped, then ``step`` runs."""
    ours, _ = clipped_run(CompiledAdam, 2, 5, subset=True)
    theirs, _ = clipped_run(torch.optim.Adam, 2, 5, subset=True)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


@needs_vml
def test_clipped_step_keeps_nan() -> None:
    """A NaN gradient value passes the clip (as torch's clamp) and reaches its parameter; the
    summands are only read."""
    ps = [torch.nn.Parameter(torch.zeros(4))]
    grads = [(torch.tensor([1.0, float("nan"), -7.0, 0.5]), torch.ones(4))]
    before = [g.clone() for g in grads[0]]
    cpu_adam.clipped_step(CompiledAdam(ps, lr=0.1), ps, grads, 3.0)
    assert ps[0].isnan().tolist() == [False, True, False, False]
    for summand, copy_before in zip(grads[0], before, strict=True):
        torch.testing.assert_close(summand, copy_before, rtol=0, atol=0, equal_nan=True)
