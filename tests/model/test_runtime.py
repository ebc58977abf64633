"""runtime: torch settings, keeping freed memory for the next batch, and handing it back to
the OS."""

from __future__ import annotations

import contextlib
import platform
import sys
from collections.abc import Iterator

import numpy as np
import pytest
import torch

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


def test_torch_settings_skip_the_nan_fill_and_restore_everything() -> None:
    fill = torch.utils.deterministic.fill_uninitialized_memory
    det = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    with runtime.torch_settings(1):
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.utils.deterministic.fill_uninitialized_memory
        assert torch.get_num_threads() == 1
    assert torch.utils.deterministic.fill_uninitialized_memory == fill
    assert torch.are_deterministic_algorithms_enabled() == det
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("batch_threads", [1, 2])
def test_no_pass_reads_memory_before_writing_it(
    dataset: FakeDataset, monkeypatch: pytest.MonkeyPatch, batch_threads: int
) -> None:
    """With torch's NaN fill of new tensors back on, fit and predict give the same numbers: no
    uninitialized memory reaches a result, so skipping the fill (``torch_settings``) is safe."""
    settings = {**FAST, "n_epochs": 2, "batch_threads": batch_threads}
    expected = ALSTM(**settings).fit(dataset).predict(dataset)
    plain = runtime.torch_settings

    @contextlib.contextmanager
    def filling(n_threads: int | None) -> Iterator[None]:
        with plain(n_threads):
            torch.utils.deterministic.fill_uninitialized_memory = True
            yield

    monkeypatch.setattr(alstm_module, "torch_settings", filling)
    got = ALSTM(**settings).fit(dataset).predict(dataset)
    assert np.array_equal(got.to_numpy(), expected.to_numpy())
