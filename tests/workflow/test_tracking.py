from __future__ import annotations

from pathlib import Path

import pytest

from alstm.workflow.config import TrackingConfig, load_config
from alstm.workflow.tracking import flatten, track_run

ROOT = Path(__file__).resolve().parents[2]


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}) == {
        "a.b": 1, "a.c.d": [1, 2], "e": "x"
    }  # fmt: skip


def test_track_run_logs_params_metrics_and_files(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    config = load_config(ROOT / "configs" / "demo.yaml")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text('{"IC": 0.05}')
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = TrackingConfig(uri=uri, experiment="t")
    metrics = {"IC": 0.05, "excess_return_with_cost": {"information_ratio": 1.5}}
    evals = {"train": [-1.0, -0.9], "valid": [-1.1], "train_loss": [1.2, 0.95]}
    run_id = track_run(tracking, config, run_dir, metrics, evals)
    assert run_id is not None
    client = mlflow.tracking.MlflowClient(uri)  # artifacts go to the default location
    got = client.get_run(run_id)
    assert got.data.metrics["IC"] == 0.05
    assert got.data.metrics["excess_return_with_cost.information_ratio"] == 1.5
    assert got.data.params["model.name"] == "ALSTM"
    history = client.get_metric_history(run_id, "train_score")
    assert [m.value for m in history] == [-1.0, -0.9]
    losses = client.get_metric_history(run_id, "train_loss")
    assert [(m.step, m.value) for m in losses] == [(0, 1.2), (1, 0.95)]
    assert "metrics.json" in [a.path for a in client.list_artifacts(run_id)]


def test_tracking_off_or_broken_never_fails(tmp_path: Path) -> None:
    config = load_config(ROOT / "configs" / "demo.yaml")
    assert track_run(TrackingConfig(enabled=False), config, tmp_path, {}, {}) is None
    broken = TrackingConfig(uri="unsupported-scheme://nowhere")
    assert track_run(broken, config, tmp_path, {"IC": 0.1}, {}) is None
