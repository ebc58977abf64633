"""runtime: keeping freed memory for the next batch, and handing it back to the OS."""

from __future__ import annotations

import platform
import sys

import pytest

import alstm.model.alstm as alstm_module
from alstm.model import ALSTM, runtime
from alstm.model.runtime import release_free_memory
from tests.model.conftest import FAST, FakeDataset


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="malloc_trim is glibc's",
)
def test_release_free_memory_trims_on_glibc() -> None:
    assert release_free_memory()


def test_every_epoch_releases_after_training_and_after_scoring(
    dataset: FakeDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(alstm_module, "release_free_memory", lambda: calls.append(1))
    evals: dict[str, list[float]] = {}
    ALSTM(**{**FAST, "n_epochs": 3, "early_stop": 10}).fit(dataset, evals_result=evals)
    assert len(evals["valid"]) == 3
    assert len(calls) == 2 * 3


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)
def test_keep_freed_memory_sets_glibcs_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert runtime._MALLOPT is not None and runtime._MALLOPT(runtime._M_TRIM_THRESHOLD, 2**30)
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(runtime, "_MALLOPT", lambda *args: calls.append(args) or 1)
    runtime.keep_freed_memory.cache_clear()
    try:
        assert runtime.keep_freed_memory()
    finally:
        runtime.keep_freed_memory.cache_clear()
    # heap blocks up to glibc's largest mmap threshold, and free heap kept until a trim
    assert sorted(calls) == [
        (runtime._M_MMAP_THRESHOLD, 32 * 2**20),
        (runtime._M_TRIM_THRESHOLD, 2**30),
    ]


def test_fit_keeps_freed_memory(dataset: FakeDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append(1))
    ALSTM(**{**FAST, "n_epochs": 1}).fit(dataset)
    assert calls
