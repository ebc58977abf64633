"""kernels: oneMKL's matrix product called from compiled code."""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest
import torch

from alstm.model import kernels

pytestmark = pytest.mark.skipif(kernels.SGEMM is None, reason="this torch has no oneMKL sgemm_")


@nb.njit
def _product(a, trans_a, b, trans_b, c, beta):  # type: ignore[no-untyped-def]
    kernels.matmul(a, trans_a, b, trans_b, c, beta, np.empty(10, np.float32))


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("strided", [False, True])
def test_matmul_matches_numpy(trans_a: bool, trans_b: bool, beta: float, strided: bool) -> None:
    rng = np.random.default_rng(0)
    m, k, n = 7, 5, 3  # all different, so a wrong dimension or leading dimension shows

    def matrix(rows: int, cols: int) -> np.ndarray:
        wide = rng.standard_normal((rows, cols + 4 * strided), dtype=np.float32)
        return wide[:, 2 * strided : 2 * strided + cols]  # strided: rows longer than the matrix

    a = matrix(k, m) if trans_a else matrix(m, k)
    b = matrix(n, k) if trans_b else matrix(k, n)
    c = matrix(m, n)
    expected = (a.T if trans_a else a) @ (b.T if trans_b else b) + beta * c
    if beta == 0.0:
        c[:] = np.nan  # beta 0 must not read c
    _product(a, trans_a, b, trans_b, c, np.float32(beta))
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-6)


@nb.njit
def _as_operand(src, dst):  # type: ignore[no-untyped-def]
    kernels.as_operand(src, dst)


def test_as_operand_rounds_to_bfloat16_as_torch_does() -> None:
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    values = values[np.isfinite(values)]
    # ties to even both ways, the largest finite floats, zeros and the smallest subnormals
    specials = np.array([0x3F808000, 0x3F818000, 0x7F7FFFFF, 0x80000000, 0, 1], np.uint32)
    values = np.concatenate([values, specials.view(np.float32), [1.0, -2.5, 1e-40]]).astype(
        np.float32
    )
    out = np.empty(values.shape, np.uint16)
    _as_operand(values, out)
    expected = torch.from_numpy(values).bfloat16().view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(out, expected)
    same = values.copy()
    _as_operand(values, same)  # a float32 operand is the array itself: nothing to do
    np.testing.assert_array_equal(same, values)


def test_bfloat16_product_adds_the_exact_products_in_float32() -> None:
    if kernels.GEMM_BF16 is None:
        pytest.skip("this torch has no oneMKL bfloat16 product")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 5), dtype=np.float32)
    b = rng.standard_normal((4, 5), dtype=np.float32)
    a16, b16 = np.empty(a.shape, np.uint16), np.empty(b.shape, np.uint16)
    _as_operand(a, a16)
    _as_operand(b, b16)
    rounded = [(x.astype(np.uint32) << 16).view(np.float32) for x in (a16, b16)]
    c = np.full((6, 4), np.nan, np.float32)
    _product(a16, False, b16, True, c, np.float32(0.0))
    np.testing.assert_allclose(c, rounded[0] @ rounded[1].T, rtol=1e-6, atol=1e-6)
    assert np.abs(c - a @ b.T).max() > 1e-4  # not the float32 product
