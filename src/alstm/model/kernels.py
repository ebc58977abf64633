"""Compiled building blocks of the CPU fast paths (``cpu_gru``, ``cpu_projection``,
``cpu_attention``, ``cpu_adam``): oneMKL's matrix products (float32, and bfloat16 into float32)
and √ callable from numba, bfloat16 rounding, a float32 σ (and tanh) that vectorizes, a fused
multiply-add, arrays from tensor addresses, and where the passes run."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numba as nb
import numpy as np
import torch
from llvmlite import binding as llvm
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload


def _mkl_symbol(name: str) -> int | None:
    """Address of the oneMKL function ``name`` inside torch's CPU library, or None (a torch
    built without oneMKL, or one that does not export it)."""
    if not torch.backends.mkl.is_available():
        return None
    for path in sorted((Path(torch.__file__).parent / "lib").glob("libtorch_cpu.*")):
        try:
            return ctypes.cast(getattr(ctypes.CDLL(str(path)), name), ctypes.c_void_p).value
        except (OSError, AttributeError):
            continue
    return None


SGEMM = _mkl_symbol("sgemm_")  # Fortran BLAS
#: oneMKL's product of bfloat16 matrices into float32 (Fortran interface, ``sgemm_``'s arguments)
GEMM_BF16 = _mkl_symbol("gemm_bf16bf16f32_")
#: oneMKL's vector math √ (Fortran interface), which torch's ``sqrt`` calls for float32 tensors
VSQRT = _mkl_symbol("VMSSQRT_")
for _name, _address in (("sgemm_", SGEMM), ("gemm_bf16bf16f32_", GEMM_BF16), ("VMSSQRT_", VSQRT)):
    if _address is not None:
        llvm.add_symbol(_name, _address)  # compiled code calls them by name
_sgemm = types.ExternalFunction("sgemm_", types.void(*([types.voidptr] * 13)))
_gemm_bf16 = types.ExternalFunction("gemm_bf16bf16f32_", types.void(*([types.voidptr] * 13)))
_vsqrt = types.ExternalFunction("VMSSQRT_", types.void(*([types.voidptr] * 4)))


def compiled_here(x: torch.Tensor) -> bool:
    """True when the compiled passes (``cpu_gru``'s whole layers, ``cpu_projection``,
    ``cpu_attention``) run for ``x``: a float32 CPU tensor, oneMKL at hand, and one torch thread
    (they run on one; on several, torch's ops split each step across the threads)."""
    return (
        SGEMM is not None
        and torch.get_num_threads() == 1
        and x.device.type == "cpu"
        and x.dtype == torch.float32
    )


def matmul(a, trans_a, b, trans_b, c, beta, scratch):  # type: ignore[no-untyped-def]
    """``c ← op(a) @ op(b) + beta · c`` for float32 ``c`` and matrices ``a``, ``b`` with
    contiguous rows (``op`` transposes when its flag is set), in compiled code only: through
    oneMKL's column-major ``sgemm_`` as ``cᵀ = op(b)ᵀ op(a)ᵀ`` for float32 ``a`` and ``b``, its
    ``gemm_bf16bf16f32_`` for bfloat16 ones (``uint16`` arrays of their bits, see ``as_operand``).
    ``scratch``: ``float32 [10]``, where the arguments the product takes by reference go."""
    raise NotImplementedError("matmul runs in compiled code only")


@overload(matmul)
def _matmul(a, trans_a, b, trans_b, c, beta, scratch):  # type: ignore[no-untyped-def]
    gemm = _gemm_bf16 if a.dtype == types.uint16 else _sgemm
    size = 2 if a.dtype == types.uint16 else 4

    def impl(a, trans_a, b, trans_b, c, beta, scratch):  # type: ignore[no-untyped-def]
        m, n = c.shape
        ints = scratch.view(np.int32)
        scratch[0], scratch[1] = np.float32(1.0), beta
        ints[2], ints[3], ints[4] = n, m, a.shape[0] if trans_a else a.shape[1]
        # leading dimensions: row strides (columns must be contiguous)
        ints[5], ints[6], ints[7] = b.strides[0] // size, a.strides[0] // size, c.strides[0] // 4
        ints[8], ints[9] = ord("T") if trans_b else ord("N"), ord("T") if trans_a else ord("N")
        p = scratch.ctypes.data
        gemm(p + 32, p + 36, p + 8, p + 12, p + 16, p, b.ctypes.data, p + 20,
             a.ctypes.data, p + 24, p + 4, c.ctypes.data, p + 28)  # fmt: skip

    return impl


def as_operand(src, dst):  # type: ignore[no-untyped-def]
    """``dst ← src`` as a product's operand, in compiled code only: for a ``uint16`` ``dst``, the
    bits of ``src``'s bfloat16 rounding (to nearest, ties to even, as torch's ``bfloat16()``);
    nothing for a float32 ``dst`` (it is ``src`` itself). Both contiguous, the same shape."""
    raise NotImplementedError("as_operand runs in compiled code only")


@overload(as_operand)
def _as_operand(src, dst):  # type: ignore[no-untyped-def]
    if dst.dtype != types.uint16:
        return lambda src, dst: None

    def impl(src, dst):  # type: ignore[no-untyped-def]  # pragma: no cover - numba
        bits = src.reshape(src.size).view(np.uint32)
        out = dst.reshape(dst.size)
        for i in range(bits.size):
            b = bits[i]  # + 0x7FFF, + 1 more when the kept part is odd: ties go to even
            out[i] = np.uint16((b + np.uint32(0x7FFF) + ((b >> 16) & np.uint32(1))) >> 16)

    return impl


@intrinsic
def _as_float32(typingctx, bits):  # type: ignore[no-untyped-def]  # pragma: no cover - numba
    """The float32 whose bit pattern is the int32 ``bits`` (a free reinterpretation)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@nb.njit(inline="always", error_model="numpy")
def sigmoid(a):  # pragma: no cover - numba
    """σ(a) = 1 / (1 + e^−a) in float32, within 2e-7 of torch's: e^x as 2^k · p(x − k ln 2) with
    Cephes' degree-6 polynomial and 2^k from its exponent bits. Written out so that the loops
    calling it vectorize (numba has no vector ``exp`` without Intel's SVML)."""
    x = -a
    x = x if x > np.float32(-87.0) else np.float32(-87.0)
    x = x if x < np.float32(88.0) else np.float32(88.0)
    # round to nearest by the float32 magic number 1.5 · 2^23
    k = (x * np.float32(1.4426950408889634) + np.float32(12582912.0)) - np.float32(12582912.0)
    x = x - k * np.float32(0.693359375) - k * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4) * x + np.float32(1.3981999507e-3)
    p = p * x + np.float32(8.3334519073e-3)
    p = p * x + np.float32(4.1665795894e-2)
    p = p * x + np.float32(1.6666665459e-1)
    p = p * x + np.float32(5.0000001201e-1)
    e = (p * (x * x) + x + np.float32(1.0)) * _as_float32((np.int32(k) + np.int32(127)) << 23)
    return np.float32(1.0) / (np.float32(1.0) + e)


@nb.njit(inline="always", error_model="numpy")
def tanh(a):  # pragma: no cover - numba
    """tanh(a) as ``2σ(2a) − 1`` in float32, the same formula as ``activations.tanh``."""
    return np.float32(2.0) * sigmoid(np.float32(2.0) * a) - np.float32(1.0)


# torch's mode for oneMKL's vector math: high accuracy, denormals kept, errors ignored
# (VML_HA | VML_FTZDAZ_OFF | VML_ERRMODE_IGNORE in mkl_vml_defines.h)
_VML_MODE = 0x2 | 0x140000 | 0x100


@nb.njit(inline="always")
def sqrt(a, out, scratch):  # pragma: no cover - numba
    """``out ← √a`` for contiguous float32 arrays, by oneMKL's vector math as torch's ``sqrt``
    computes it (its high-accuracy √ is not always the correctly rounded one numpy gives).
    ``scratch``: ``int64 [2]``, where the arguments taken by reference go."""
    scratch[1] = _VML_MODE
    scratch.view(np.int32)[0] = a.size
    p = scratch.ctypes.data
    _vsqrt(p, a.ctypes.data, out.ctypes.data, p + 8)


@intrinsic
def fma(typingctx, a, b, c):  # type: ignore[no-untyped-def]  # pragma: no cover - numba
    """``a · b + c`` in float32 with one rounding (a fused multiply-add)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.fma(*args)

    return types.float32(types.float32, types.float32, types.float32), codegen


@intrinsic
def _float32_pointer(typingctx, address):  # type: ignore[no-untyped-def]  # pragma: no cover
    """The int64 ``address`` as a float32 pointer."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.inttoptr(args[0], ir.PointerType(ir.FloatType()))

    return types.CPointer(types.float32)(types.int64), codegen


@nb.njit(inline="always")
def float32_array(address, size):  # pragma: no cover - numba
    """The float32 array of ``size`` elements at ``address`` (a tensor's ``data_ptr()``), so
    that one call can take any number of tensors as a table of addresses."""
    return nb.carray(_float32_pointer(address), size)
