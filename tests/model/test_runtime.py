"""How torch runs: freed activation memory is reused, not faulted in again."""

from __future__ import annotations

import platform
import resource

import pytest
import torch

from alstm.model.runtime import retain_freed_memory


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="needs glibc"
)
def test_freed_blocks_are_reused_without_page_faults() -> None:
    assert retain_freed_memory()

    def faults() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    for _ in range(2):  # 16 MiB blocks: the heap grows to hold them, then reuses them
        torch.empty(4 * 2**20).fill_(1.0)
    before = faults()
    for _ in range(10):
        torch.empty(4 * 2**20).fill_(1.0)
    # glibc's default: a fresh mmap each time, 4096 page faults per block (40960 here); kept
    # blocks fault only when small Python objects left on the heap top make it grow again
    assert faults() - before < 3 * 4096
