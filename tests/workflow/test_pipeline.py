"""`alstm run` end to end on a tiny synthetic market: artifacts, refusal, resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from alstm.cli import app
from alstm.model import alstm as alstm_model
from alstm.workflow.config import RunConfig, load_config
from alstm.workflow.pipeline import run
from alstm.workflow.run_dir import RunError
from tests.tiny import ROOT, TINY

ARTIFACTS = (
    "config.yaml meta.json metrics.json evals.json pred.parquet label.parquet "
    "report_normal.parquet positions.parquet trades.parquet report.html"
).split()


@pytest.fixture(scope="module")
def tiny() -> RunConfig:
    return load_config(ROOT / "configs" / "demo.yaml", TINY)


@pytest.fixture(scope="module")
def finished(tiny: RunConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("runs")
    run(tiny, base / "full", cache_dir=base / "cache")
    return base / "full"


def test_run_writes_every_artifact(finished: Path) -> None:
    for name in ARTIFACTS:
        assert (finished / name).is_file(), name
    assert (finished / "handler" / "infer").is_dir() and (finished / "model").is_dir()
    assert not list(finished.rglob("*.pkl")) and not list(finished.rglob(".*tmp*"))
    metrics = json.loads((finished / "metrics.json").read_text())
    assert {"IC", "ICIR", "Rank IC", "Rank ICIR", "excess_return_with_cost"} <= set(metrics)
    pred = pd.read_parquet(finished / "pred.parquet")
    assert list(pred.columns) == ["datetime", "instrument", "score"]
    assert pred["datetime"].min() >= pd.Timestamp("2018-01-01")
    assert len(json.loads((finished / "evals.json").read_text())["valid"]) >= 1


def test_finished_run_is_not_overwritten(tiny: RunConfig, finished: Path) -> None:
    with pytest.raises(RunError, match="already holds a finished run"):
        run(tiny, finished, cache_dir=finished.parent / "cache")


def test_resume_after_kill_matches_uninterrupted(
    tiny: RunConfig, finished: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = finished.parent / "killed"
    real = alstm_model.train_epoch
    calls = {"n": 0}

    def dying(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill during epoch 2")
        return real(*args, **kwargs)

    monkeypatch.setattr(alstm_model, "train_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        run(tiny, out, cache_dir=finished.parent / "cache")
    assert not (out / "metrics.json").exists()
    with pytest.raises(RunError, match="unfinished run"):
        run(tiny, out, cache_dir=finished.parent / "cache")
    monkeypatch.setattr(alstm_model, "train_epoch", real)
    run(tiny, out, cache_dir=finished.parent / "cache", resume=True)
    a = pd.read_parquet(finished / "pred.parquet")
    b = pd.read_parquet(out / "pred.parquet")
    pd.testing.assert_frame_equal(a, b)
    ma = json.loads((finished / "metrics.json").read_text())
    mb = json.loads((out / "metrics.json").read_text())
    assert ma["IC"] == mb["IC"] and ma["excess_return_with_cost"] == mb["excess_return_with_cost"]


def test_cli_run_and_config_errors(finished: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(ROOT / "configs" / "demo.yaml"), "--out", str(finished),
                              "--cache-dir", str(finished.parent / "cache")])  # fmt: skip
    assert res.exit_code == 2 and "already holds a finished run" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "configs" / "demo.yaml").read_text().replace("name: ALSTM", "name: X"))
    res = runner.invoke(app, ["run", str(bad)])
    assert res.exit_code == 2 and "unknown 'X'; registered: ALSTM" in res.output
    qlib_yaml = Path(__file__).parent / "qlib_yaml" / "workflow_config_alstm_Alpha360.yaml"
    res = runner.invoke(app, ["config", "from-qlib", str(qlib_yaml), "--provider", "/data"])
    assert res.exit_code == 0 and "factors: alpha360" in res.stdout
    assert np.isfinite(json.loads((finished / "metrics.json").read_text())["IC"])
