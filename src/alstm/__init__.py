"""alstm: Qlib's ALSTM benchmark, reproduced fast and readable."""

from alstm import mkl_path

__version__ = "0.1.0"

# Before anything imports torch: see mkl_path (oneMKL's AVX-512 kernels on AMD CPUs).
mkl_path.enable()
