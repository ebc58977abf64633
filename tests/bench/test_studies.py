"""The attention, complexity and early-stopping studies end to end on a tiny synthetic market,
and their pure parts (multiply-add count, Pareto front, grid and setting parsing) by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from alstm.bench.study_attention import VARIANTS, attention_profile, study_attention
from alstm.bench.study_common import TIMING, seeds_for
from alstm.bench.study_complexity import (
    DEFAULT_GRID,
    grid_points,
    multiply_adds,
    pareto_front,
    parse_grid,
    study_complexity,
)
from alstm.bench.study_early_stop import QLIB_NOTE, parse_setting, study_early_stopping
from alstm.cli import app
from alstm.model.net import HEADS, ALSTMNet
from alstm.workflow.config import dump_config, load_config
from tests.tiny import ROOT, TINY

#: The pipeline test's tiny market, 2 epochs, no backtest (the studies read signal metrics).
STUDY = [*TINY, "model.kwargs.n_epochs=2", "records.portfolio_analysis=null"]


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(dump_config(load_config(ROOT / "configs" / "demo.yaml", STUDY)))
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


# ------------------------------------------------------------------------------- attention
def test_attention_ablation_end_to_end(tiny_config: Path, cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "attention"
    res = CliRunner().invoke(app, ["study", "attention", str(tiny_config), "--seeds", "1",
                                   "--out", str(out), "--cache-dir", str(cache)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert Path(res.stdout.strip().splitlines()[-1]) == out / "attention.html"
    summary = pd.read_csv(out / "ablation.csv")
    assert list(summary["variant"]) == list(HEADS) and (summary["n"] == 1).all()
    assert np.isfinite(summary["IC mean"]).all() and np.isfinite(summary["Rank IC mean"]).all()
    for variant in HEADS:
        run = out / "ablation" / variant / "seed0"
        assert (run / "metrics.json").is_file() and (run / TIMING).is_file()
    page = (out / "attention.html").read_text()
    assert all(label in page for label in VARIANTS.values()) and "cross-sectional std" in page
    profile = pd.read_csv(out / "attention.csv")
    assert list(profile["lag"]) == list(range(5))
    assert profile["mean_weight"].sum() == pytest.approx(1.0, abs=1e-5)
    record = json.loads((out / "attention.json").read_text())
    assert {r["variant"] for r in record["ablation_runs"]} == set(HEADS)
    # The plain-RNN head puts all its (reported) attention on the prediction day.
    last = attention_profile(out / "ablation" / "last" / "seed0")
    assert last.mean[-1] == 1.0 and last.entropy.max() == 0.0

    # A second call reuses every finished run; a run folder alone gives the page without ablation.
    stamp = (out / "ablation" / "both" / "seed0" / "metrics.json").stat().st_mtime_ns
    study_attention(tiny_config, out, n_seeds=1, cache_dir=cache)
    assert (out / "ablation" / "both" / "seed0" / "metrics.json").stat().st_mtime_ns == stamp
    page = study_attention(out / "ablation" / "attention" / "seed0", tmp_path / "alone")
    assert "pass a config" in page.read_text()
    assert not (tmp_path / "alone" / "ablation.csv").exists()


def test_variant_labels_cover_every_head() -> None:
    assert tuple(VARIANTS) == HEADS


# ------------------------------------------------------------------------------ complexity
def test_multiply_adds_by_hand() -> None:
    # d=2 features, h=4 hidden, 1 layer, T=3 steps:
    # input 3·2·4 = 24; GRU 3 steps · 3 gates · 4 · (4 + 4) = 288; LSTM (4 gates) 384;
    # attention 3·4·2 + 3·2 = 30 plus pooling 3·4 = 12; head 2·4 = 8 (or 4 for one input).
    assert multiply_adds(2, 4, 1, 3) == 24 + 288 + 42 + 8
    assert multiply_adds(2, 4, 1, 3, "LSTM") == 24 + 384 + 42 + 8
    assert multiply_adds(2, 4, 1, 3, head="last") == 24 + 288 + 4
    assert multiply_adds(2, 4, 1, 3, head="attention") == 24 + 288 + 42 + 4
    # A second layer adds one more recurrence of the same size.
    assert multiply_adds(2, 4, 2, 3) - multiply_adds(2, 4, 1, 3) == 288


def test_multiply_adds_match_the_weight_shapes() -> None:
    """Every weight matrix is used once per step (the head once per sample)."""
    d, h, layers, steps = 5, 6, 2, 4
    net = ALSTMNet(d, h, layers, rnn_type="LSTM")
    per_step = sum(p.numel() for n, p in net.named_parameters()
                   if "weight" in n and not n.startswith("head"))  # fmt: skip
    expected = steps * per_step + steps * h + net.head.weight.numel()  # + the pooling sum
    assert multiply_adds(d, h, layers, steps, "LSTM") == expected


def test_pareto_front_grid_and_parsing() -> None:
    ic = np.array([0.05, 0.04, 0.06, 0.03, np.nan])
    seconds = np.array([10.0, 12.0, 30.0, 5.0, 1.0])
    assert pareto_front(ic, seconds).tolist() == [True, False, True, True, False]
    assert parse_grid(["hidden_size=32,64", "rnn_type=GRU"]) == {
        "hidden_size": [32, 64], "rnn_type": ["GRU"]
    }  # fmt: skip
    assert len(grid_points(parse_grid([]))) == np.prod([len(v) for v in DEFAULT_GRID.values()])
    assert grid_points({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    with pytest.raises(ValueError, match="unknown name 'width'"):
        parse_grid(["width=3"])


def test_complexity_grid_end_to_end(tiny_config: Path, cache: Path, tmp_path: Path) -> None:
    page = study_complexity(tiny_config, tmp_path, {"hidden_size": [8, 16]}, epochs=1,
                            cache_dir=cache)  # fmt: skip
    table = pd.read_csv(tmp_path / "complexity.csv")
    assert list(table["hidden_size"]) == [8, 16]
    for _, row in table.iterrows():
        assert row["multiply_adds"] == multiply_adds(20, row["hidden_size"], 2, 5)
        params = sum(p.numel() for p in ALSTMNet(20, row["hidden_size"], 2).parameters())
        assert row["parameters"] == params and row["epochs"] == 1
    for column in ("seconds_per_epoch", "inference_samples_per_s", "peak_rss_mb"):
        assert (table[column] > 0).all(), column
    assert table["peak_rss_mb"].lt(4096).all() and np.isfinite(table["IC"]).all()
    assert table["pareto"].any()
    assert "Pareto" in page.read_text()


# -------------------------------------------------------------------------- early stopping
def test_early_stopping_study(tiny_config: Path, cache: Path, tmp_path: Path) -> None:
    settings = ["metric=loss,early_stop=1", "metric=ic,early_stop=1"]
    page = study_early_stopping(tiny_config, tmp_path, settings, n_seeds=1, cache_dir=cache)
    runs = pd.read_csv(tmp_path / "early_stopping_runs.csv")
    assert list(runs["setting"]) == settings and (runs["seed"] == 0).all()
    assert runs["epochs_run"].between(1, 2).all()
    assert (runs["best_epoch"] < runs["epochs_run"]).all()
    assert (runs["fit_seconds"] > 0).all() and np.isfinite(runs["IC"]).all()
    evals = json.loads((tmp_path / "metric-ic_early_stop-1" / "seed0" / "evals.json").read_text())
    assert evals["metric"] == "ic"
    assert list(pd.read_csv(tmp_path / "early_stopping.csv")["setting"]) == settings
    assert QLIB_NOTE in page.read_text()


def test_setting_and_seed_parsing(tiny_config: Path) -> None:
    assert parse_setting("metric=ic, lr=5e-4,dataset.step_len=10") == {
        "model.kwargs.metric": "ic", "model.kwargs.lr": 5e-4, "dataset.step_len": 10
    }  # fmt: skip
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_setting("metric")
    assert seeds_for(load_config(tiny_config), 3) == [0, 1, 2]


def test_cli_reports_bad_grids_and_settings(tiny_config: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["study", "complexity", str(tiny_config), "--grid", "width=3"])
    assert res.exit_code == 2 and "unknown name 'width'" in res.output
    res = runner.invoke(app, ["study", "early-stopping", str(tiny_config), "--setting", "ic"])
    assert res.exit_code == 2 and "expected KEY=VALUE" in res.output
    res = runner.invoke(app, ["study", "complexity", "--help"])
    assert res.exit_code == 0 and "24 points" in res.output
