"""Where and how torch runs: device choice, thread count, deterministic algorithms, and how
freed memory is kept and handed back."""

from __future__ import annotations

import ctypes
import functools
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


def resolve_device(GPU: int | None, device: str | None) -> torch.device:
    """``device`` if given, else ``cuda:GPU`` (CPU for ``GPU < 0``; ``GPU=None``: the first GPU if
    there is one, Qlib's silent default). A GPU asked for but absent warns and gives the CPU."""
    if device is None and GPU is None:
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if device is None:
        device = f"cuda:{GPU}" if GPU >= 0 else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and (
        not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()
    ):
        warnings.warn(f"{dev} was asked for but is not available; using the CPU", stacklevel=3)
        return torch.device("cpu")
    return dev


@contextmanager
def torch_settings(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` torch threads (unchanged when None) and deterministic
    algorithms on (warn-only where an op has none), without their filling of every new
    ``torch.empty`` tensor with NaN; the previous settings come back after
    (``keep_freed_memory`` stays in effect).

    Why not the fill: it is a guard against reading memory before writing it, which alstm never
    does (the tests ran with it on), and it writes every activation buffer one extra time. On
    the Alpha158 benchmark it cost 5% of a training pass (16.4 / 17.0 against 16.0 / 15.5 s,
    alternating) and 10% of a scoring pass (5.4–6.0 against 4.9–5.1 s, same scores).
    """
    keep_freed_memory()
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
        torch.utils.deterministic.fill_uninitialized_memory = fill


def _glibc_function(name: str) -> Callable[..., int] | None:
    """glibc's function ``name``, or None (another OS or C library)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name, None)
    except OSError:
        return None


_MALLOC_TRIM = _glibc_function("malloc_trim")
_MALLOPT = _glibc_function("mallopt")
# mallopt's parameters (malloc.h) and the values set: blocks up to 32 MiB (the most glibc
# allows) come from the heap, and up to 1 GiB of free heap is kept until the next trim
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP = ((_M_MMAP_THRESHOLD, 32 * 2**20), (_M_TRIM_THRESHOLD, 2**30))


@functools.cache
def keep_freed_memory() -> bool:
    """Make glibc keep the memory a batch frees for the next batch, instead of handing it back to
    the OS at once (process-wide, from the first call on); True if it could.

    Why: a training batch allocates and frees tens of MB of ``[T, B, H]`` activations on each
    batch thread. By default glibc maps blocks that large afresh or trims them off the heap when
    freed, so every batch faults their pages in again: ~7k page faults per Alpha360 batch. With
    this, an Alpha360 epoch at a quarter of the benchmark's size took 22.6 and 23.1 s instead of
    27.0 and 27.1 s (alternating runs, same peak RSS). Each thread keeps its own arena (one
    shared arena, tried before, made the batch threads wait on each other), and the memory
    still goes back to the OS after each pass (``release_free_memory``).
    """
    if _MALLOPT is None:
        return False
    return all(_MALLOPT(param, value) == 1 for param, value in _KEEP)


def release_free_memory() -> bool:
    """Hand the C heap's free pages back to the OS; True if it could (glibc's ``malloc_trim``).

    Why: glibc gives each thread that allocates an arena of its own, and an arena keeps the
    pages it freed. The training pass allocates on the batch threads and scoring on the main
    thread, so without this the process holds each arena's peak at once: an Alpha360 fit at half
    the benchmark's size peaked at 2081 MB, against 1505–1740 MB (four runs) with a trim after
    each pass, at the same speed (measured over 2 epochs).
    """
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
