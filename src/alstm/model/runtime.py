"""Where and how torch runs: device choice, thread count and deterministic algorithms."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
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
    algorithms on (warn-only where an op has none); the previous settings come back after."""
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
