"""runtime: handing freed memory back to the OS."""

from __future__ import annotations

import platform
import sys

import pytest

import alstm.model.alstm as alstm_module
from alstm.model import ALSTM
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
