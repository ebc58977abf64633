"""`alstm features` and `alstm evaluate` end to end on a small synthetic market."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from alstm.cli import app
from alstm.data.synth import write_synth

runner = CliRunner()


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("m") / "synth"
    return write_synth(root, seed=3, n_instruments=40, n_members=20, start="2018-01-01",
                       end="2019-12-31")  # fmt: skip


def test_features_writes_parquet_and_uses_cache(market: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.parquet"
    args = ["features", str(market), "--set", "alpha158", "--label", "--market", "syn100",
            "--start", "2019-01-01", "--end", "2019-06-30", "--out", str(out),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    frame = pd.read_parquet(out)
    assert list(frame.columns[:3]) == ["datetime", "instrument", "KMID"]
    assert frame.columns[-1] == "LABEL0" and len(frame.columns) == 2 + 159
    assert (tmp_path / "cache" / "factors").is_dir()
    again = runner.invoke(app, args)
    assert again.exit_code == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), frame)


def test_features_expr_only_and_errors(market: Path, tmp_path: Path) -> None:
    base = ["features", str(market), "--market", "syn100", "--start", "2019-01-01",
            "--end", "2019-03-01", "--out", str(tmp_path / "x.parquet"), "--no-cache"]  # fmt: skip
    ok = runner.invoke(app, [*base, "--expr", "MA5=Mean($close, 5)/$close"])
    assert ok.exit_code == 0, ok.output
    assert list(pd.read_parquet(tmp_path / "x.parquet").columns) == [
        "datetime",
        "instrument",
        "MA5",
    ]
    bad = runner.invoke(app, [*base, "--expr", "X=Mean($close, 5"])
    assert bad.exit_code == 2 and "factor 'X'" in bad.output and "expected ')'" in bad.output
    unknown = runner.invoke(app, [*base, "--expr", "X=$nope"])
    assert unknown.exit_code == 2 and "field(s) ['nope']" in unknown.output
    assert runner.invoke(app, [*base, "--expr", "novalue"]).exit_code != 0


def test_evaluate_prints_metrics_json(market: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "label.parquet")
    args = ["features", str(market), "--label", "--market", "syn100", "--start", "2019-01-01",
            "--end", "2019-12-31", "--out", out, "--no-cache"]  # fmt: skip
    assert runner.invoke(app, args).exit_code == 0
    label = pd.read_parquet(tmp_path / "label.parquet")
    rng = np.random.default_rng(0)
    pred = label.rename(columns={"LABEL0": "score"})
    pred["score"] = pred["score"].fillna(0) + rng.normal(0, 0.02, len(pred))
    pred.to_parquet(tmp_path / "pred.parquet")
    res = runner.invoke(app, ["evaluate", str(tmp_path / "pred.parquet"), "--data", str(market),
                              "--market", "syn100", "--benchmark", "SYN100", "--topk", "5",
                              "--n-drop", "1", "--out", str(tmp_path / "ev")])  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout.strip().splitlines()[-1])
    assert metrics["IC"] > 0.3  # the label plus noise predicts the label
    assert set(metrics["excess_return_with_cost"]) == {
        "mean", "std", "annualized_return", "information_ratio", "max_drawdown"
    }  # fmt: skip
    ev = tmp_path / "ev"
    assert json.loads((ev / "metrics.json").read_text()) == metrics
    assert len(pd.read_parquet(ev / "report.parquet")) > 200
    missing = runner.invoke(
        app, ["evaluate", str(tmp_path / "label.parquet"), "--data", str(market)]
    )
    assert missing.exit_code == 2 and "missing column(s) ['score']" in missing.output
