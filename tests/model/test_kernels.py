"""kernels: oneMKL's matrix product called from compiled code."""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest

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
