"""Checkpoints: contents, resume after a kill (bit-identical), save/load round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import alstm.model.alstm as alstm_module
from alstm.model import ALSTM
from alstm.model.checkpoint import CHECKPOINT, CONFIG, WEIGHTS, load_tensors, save_atomic
from tests.model.conftest import FAST, FakeDataset

#: Dropout on, so that resuming must also restore torch's random state.
SETTINGS = {**FAST, "dropout": 0.3}


class Killed(Exception):
    """Stands for the process being killed."""


def kill_after_checkpoints(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """Make fit die right after it has written its ``n``-th checkpoint."""
    written = []

    def save_then_die(obj: object, path: Path) -> None:
        save_atomic(obj, path)
        if path.name == CHECKPOINT:
            written.append(path)
            if len(written) == n:
                raise Killed

    monkeypatch.setattr(alstm_module, "save_atomic", save_then_die)


def test_resume_after_kill_gives_identical_predictions(
    dataset: FakeDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evals_a: dict[str, list[float]] = {}
    whole = ALSTM(**SETTINGS).fit(dataset, evals_result=evals_a, save_path=tmp_path / "a")
    expected = whole.predict(dataset)

    with monkeypatch.context() as m:
        kill_after_checkpoints(m, 1)
        with pytest.raises(Killed):
            ALSTM(**SETTINGS).fit(dataset, save_path=tmp_path / "b")
    assert load_tensors(tmp_path / "b" / CHECKPOINT)["epoch"] == 1
    assert not (tmp_path / "b" / WEIGHTS).exists()

    evals_b: dict[str, list[float]] = {}
    resumed = ALSTM(**SETTINGS).fit(
        dataset, evals_result=evals_b, save_path=tmp_path / "b", resume=True
    )
    assert np.array_equal(resumed.predict(dataset).to_numpy(), expected.to_numpy())
    assert evals_b == evals_a and len(evals_a["valid"]) == SETTINGS["n_epochs"]


def test_checkpoint_contents(dataset: FakeDataset, tmp_path: Path) -> None:
    ALSTM(**SETTINGS).fit(dataset, save_path=tmp_path)
    state = load_tensors(tmp_path / CHECKPOINT)  # weights_only=True
    assert state["epoch"] == SETTINGS["n_epochs"] and state["finished"]
    assert set(state) >= {"net", "optimizer", "stopper", "evals_result", "rng", "config"}
    assert json.loads(state["config"]) == ALSTM(**SETTINGS).get_params()
    assert json.loads(state["rng"]["numpy"])["bit_generator"] == "PCG64"
    assert state["rng"]["torch"].dtype == torch.uint8
    assert set(state["stopper"]["best_state"]) == set(state["net"])
    assert not list(tmp_path.glob("*.tmp"))
    config = json.loads((tmp_path / CONFIG).read_text())
    assert config == {"model": "ALSTM", "params": ALSTM(**SETTINGS).get_params()}


def test_resuming_a_finished_run_trains_no_more(
    dataset: FakeDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ALSTM(**SETTINGS).fit(dataset, save_path=tmp_path)
    monkeypatch.setattr(alstm_module, "train_epoch", pytest.fail)
    again = ALSTM(**{**SETTINGS, "verbose": True}).fit(dataset, save_path=tmp_path, resume=True)
    assert np.array_equal(again.predict(dataset).to_numpy(), first.predict(dataset).to_numpy())


def test_resume_refuses_other_settings_or_data(dataset: FakeDataset, tmp_path: Path) -> None:
    ALSTM(**SETTINGS).fit(dataset, save_path=tmp_path)
    with pytest.raises(ValueError, match=r"cannot resume: .*lr: saved 0\.01 vs 0\.02"):
        ALSTM(**{**SETTINGS, "lr": 0.02}).fit(dataset, save_path=tmp_path, resume=True)
    train = dataset.sets["train"]
    dataset.sets["train"] = type(train)(train.x[:-64], train.y[:-64], train.index[:-64])
    with pytest.raises(ValueError, match=r"saw \[720, 240\] train/valid samples"):
        ALSTM(**SETTINGS).fit(dataset, save_path=tmp_path, resume=True)
    with pytest.raises(ValueError, match="resume=True needs save_path"):
        ALSTM(**SETTINGS).fit(dataset, resume=True)


def test_resume_without_a_checkpoint_starts_afresh(dataset: FakeDataset, tmp_path: Path) -> None:
    a = ALSTM(**SETTINGS).fit(dataset, save_path=tmp_path / "new", resume=True).predict(dataset)
    b = ALSTM(**SETTINGS).fit(dataset).predict(dataset)
    assert np.array_equal(a.to_numpy(), b.to_numpy())


def test_save_and_load_round_trip(dataset: FakeDataset, tmp_path: Path) -> None:
    model = ALSTM(**SETTINGS).fit(dataset, save_path=tmp_path)
    state = load_tensors(tmp_path / WEIGHTS)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    loaded = ALSTM.load(tmp_path)
    assert loaded.get_params() == model.get_params()
    assert np.array_equal(loaded.predict(dataset).to_numpy(), model.predict(dataset).to_numpy())
