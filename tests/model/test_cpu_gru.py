"""cpu_gru: the same outputs and gradients as torch.nn.GRU."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from alstm.model import kernels
from alstm.model.cpu_gru import _step_forward, cpu_gru_applies, gru_forward

needs_mkl = pytest.mark.skipif(kernels.SGEMM is None, reason="this torch has no oneMKL sgemm_")


@pytest.fixture(
    params=[pytest.param((1, True), marks=needs_mkl), (1, False), (2, True)],
    ids=["compiled layer", "torch-op step, no oneMKL", "torch-op step, 2 threads"],
)
def torch_threads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A layer runs as one compiled loop on one torch thread with oneMKL; as a loop of torch ops
    on several threads or without oneMKL."""
    threads, mkl = request.param
    if not mkl:
        monkeypatch.setattr(kernels, "SGEMM", None)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    assert kernels.compiled_here(torch.zeros(1)) == (threads == 1 and mkl)
    yield threads
    torch.set_num_threads(before)


@pytest.mark.parametrize(("steps", "n_in", "hidden", "layers"), [(7, 5, 8, 2), (3, 4, 6, 1)])
def test_matches_nn_gru_forward_and_backward(
    steps: int, n_in: int, hidden: int, layers: int, torch_threads: int
) -> None:
    torch.manual_seed(0)
    rnn = torch.nn.GRU(n_in, hidden, num_layers=layers)
    x = torch.randn(steps, 9, n_in, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    assert cpu_gru_applies(rnn, x)
    out = gru_forward(rnn, x)
    ref, _ = rnn(x_ref)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    grad = torch.randn_like(out)
    mine = torch.autograd.grad(out, [x, *rnn.parameters()], grad)
    theirs = torch.autograd.grad(ref, [x_ref, *rnn.parameters()], grad)
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(gru_forward(rnn, x), ref, atol=1e-6, rtol=0)


@pytest.mark.skipif(kernels.GEMM_BF16 is None, reason="this torch has no oneMKL bfloat16 product")
def test_bfloat16_products_agree_between_the_compiled_and_torch_paths() -> None:
    """The compiled layers (oneMKL's bfloat16 product) and the torch-op steps (float32 products
    of the same bfloat16-rounded operands, which are exact) add the same terms; both differ
    from float32 by bfloat16's rounding."""
    torch.manual_seed(0)
    rnn = torch.nn.GRU(5, 8, num_layers=2)
    x = torch.randn(7, 9, 5)
    grad = torch.randn(7, 9, 8)
    before = torch.get_num_threads()
    results = {}
    try:
        for threads, bf16 in ((1, True), (2, True), (1, False)):
            torch.set_num_threads(threads)
            xg = x.clone().requires_grad_()
            out = gru_forward(rnn, xg, bf16=bf16)
            results[threads, bf16] = [out, *torch.autograd.grad(out, [xg, *rnn.parameters()], grad)]
            with torch.no_grad():
                torch.testing.assert_close(gru_forward(rnn, x, bf16=bf16), out, atol=0, rtol=0)
    finally:
        torch.set_num_threads(before)
    for a, b, c in zip(results[1, True], results[2, True], results[1, False], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        assert (a - c).abs().max() > 1e-4  # bfloat16's rounding shows ...
        torch.testing.assert_close(a, c, atol=0.05, rtol=0.05)  # ... and is all that differs


def test_falls_back_where_it_does_not_apply() -> None:
    x = torch.zeros(2, 3, 4)
    assert not cpu_gru_applies(torch.nn.LSTM(4, 4), x)
    assert not cpu_gru_applies(torch.nn.GRU(4, 4, batch_first=True), x)
    assert not cpu_gru_applies(torch.nn.GRU(4, 4), x.double())
    dropping = torch.nn.GRU(4, 4, num_layers=2, dropout=0.5)
    assert not cpu_gru_applies(dropping, x)
    assert cpu_gru_applies(dropping.eval(), x)


def test_compiled_sigmoid_matches_torch_over_the_float32_range() -> None:
    a = torch.cat([torch.linspace(-120, 120, 200_001), torch.tensor([0.0, -0.0, 1e-30, -1e-30])])
    gi = torch.zeros(len(a), 3)  # one hidden unit: gates r, z, n
    gi[:, 0] = a  # r = σ(a)
    gi[:, 1] = a  # z = σ(a)
    gi[:, 2] = a / 2  # n = tanh(a / 2) = 2σ(a) − 1
    h = torch.zeros(len(a), 1)
    rz, n, rgh, h_next = (
        torch.empty(len(a), 2),
        torch.empty(len(a), 1),
        torch.empty(len(a), 1),
        h.clone(),
    )
    no_bias = torch.zeros(3)
    args = [t.numpy() for t in (gi, torch.zeros_like(gi), no_bias, no_bias, h, h_next, rz, n, rgh)]
    _step_forward(*args)
    torch.testing.assert_close(rz[:, 0], torch.sigmoid(a), atol=2e-7, rtol=0)
    torch.testing.assert_close(rz[:, 1], torch.sigmoid(a), atol=2e-7, rtol=0)
    torch.testing.assert_close(n[:, 0], torch.tanh(a / 2), atol=3e-7, rtol=0)
    torch.testing.assert_close(h_next[:, 0], (1 - rz[:, 1]) * n[:, 0], atol=1e-7, rtol=0)
