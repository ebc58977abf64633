"""The bench table on fake run folders: seed statistics, the ensemble row by hand, formatting."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alstm.bench.table import (
    METRICS,
    QLIB_ALSTM,
    bench_table,
    cell,
    config_means,
    ensemble_metrics,
    ensemble_pred,
    finished_runs,
    write_bench_html,
    write_tables,
)
from tests.workflow.run_fixture import CONFIG_YAML

DAYS = pd.bdate_range("2020-09-01", periods=6)
INSTS = [f"SH60000{i}" for i in range(5)]
SEED_IC = {1: 0.02, 2: 0.05, 3: 0.03}


def _fake_runs(key_dir: Path) -> dict[int, pd.Series]:
    """Three finished seeds (one shared label, predictions differing by seed) and one unfinished
    seed; config without a backtest. Returns each finished seed's prediction."""
    rng = np.random.default_rng(0)
    idx = pd.MultiIndex.from_product([DAYS, INSTS], names=["datetime", "instrument"])
    label = pd.Series(rng.normal(0, 0.02, len(idx)), idx, name="label")
    label.iloc[3] = np.nan
    preds = {}
    for seed, ic in SEED_IC.items():
        run = key_dir / f"seed{seed}"
        run.mkdir(parents=True)
        pred = pd.Series(label.fillna(0).to_numpy() + rng.normal(0, 0.03, len(idx)), idx)
        pred = pred.astype(np.float32).rename("score")
        pred.iloc[7] = np.nan
        preds[seed] = pred
        pred.reset_index().to_parquet(run / "pred.parquet", index=False)
        label.reset_index().to_parquet(run / "label.parquet", index=False)
        (run / "config.yaml").write_text(CONFIG_YAML)
        (run / "meta.json").write_text(json.dumps({"data_fingerprint": "abc123", "data_dir": "/x"}))
        risk = {"annualized_return": ic * 2, "information_ratio": ic * 20, "max_drawdown": -ic}
        metrics = {
            "IC": ic,
            "ICIR": ic * 10,
            "Rank IC": ic + 0.01,
            "Rank ICIR": ic * 11,
            "excess_return_with_cost": risk,
            "seconds": 1.0,
        }
        (run / "metrics.json").write_text(json.dumps(metrics))
    (key_dir / "seed4").mkdir()  # started, never finished: not part of the table
    (key_dir / "seed4" / "config.yaml").write_text(CONFIG_YAML)
    return preds


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "fake_alstm-0123abcd"


def _hand_corr(a: np.ndarray, b: np.ndarray, rank: bool = False) -> float:
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    if rank:  # Spearman: Pearson of the average ranks of the pairs both sides have
        a, b = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    return float(np.corrcoef(a, b)[0, 1])


def test_ensemble_metrics_match_a_hand_computation(key_dir: Path) -> None:
    preds = _fake_runs(key_dir)
    runs = list(finished_runs(key_dir).values())
    assert [r.name for r in runs] == ["seed1", "seed2", "seed3"]
    label = pd.read_parquet(runs[0] / "label.parquet")["label"].to_numpy().reshape(6, 5)
    # By hand: per date and run, z = (x − mean) / std (ddof 1) over the scored instruments;
    # the ensemble is the mean of the runs' z where present.
    z = []
    for pred in preds.values():
        x = pred.to_numpy(np.float64).reshape(6, 5)
        mean = np.nanmean(x, axis=1, keepdims=True)
        z.append((x - mean) / np.nanstd(x, axis=1, ddof=1, keepdims=True))
    stacked = np.stack(z)
    counts = (~np.isnan(stacked)).sum(axis=0)
    ens = np.where(counts > 0, np.nansum(stacked, axis=0) / np.maximum(counts, 1), np.nan)
    np.testing.assert_allclose(
        ensemble_pred(list(preds.values())).to_numpy().reshape(6, 5), ens, rtol=1e-12
    )
    ic = np.array([_hand_corr(ens[d], label[d]) for d in range(6)])
    rank = np.array([_hand_corr(ens[d], label[d], rank=True) for d in range(6)])
    got = ensemble_metrics(runs)
    assert got["IC"] == pytest.approx(ic.mean(), rel=1e-12)
    assert got["ICIR"] == pytest.approx(ic.mean() / ic.std(ddof=1), rel=1e-12)
    assert got["Rank IC"] == pytest.approx(rank.mean(), rel=1e-12)
    assert got["Rank ICIR"] == pytest.approx(rank.mean() / rank.std(ddof=1), rel=1e-12)
    # The config has no backtest: its portfolio numbers stay empty.
    assert all(math.isnan(got[m]) for m in METRICS[4:])


def test_bench_table_rows(key_dir: Path, tmp_path: Path) -> None:
    _fake_runs(key_dir)
    table = bench_table([key_dir, tmp_path / "runs" / "never-ran"])
    assert table["kind"].tolist() == ["seeds", "ensemble", "qlib", "qlib"]
    seeds = table.iloc[0]
    ics = np.array(list(SEED_IC.values()))
    assert seeds["seeds"] == 3 and seeds["config"] == "fake_alstm-0123abcd"
    assert seeds["IC"] == pytest.approx(ics.mean()) and seeds["IC std"] == pytest.approx(
        ics.std(ddof=1)
    )
    assert seeds["max_drawdown"] == pytest.approx(-ics.mean())
    assert seeds["data fingerprint"] == "abc123"
    assert seeds["test period"] == "2020-09-01 .. 2020-12-31"
    assert math.isnan(table.iloc[1]["IC std"])
    qlib = table.iloc[2]
    assert qlib["row"] == "Qlib ALSTM Alpha158 (published)" and qlib["seeds"] == 20
    assert (qlib["IC"], qlib["IC std"]) == QLIB_ALSTM["Alpha158"][0]
    assert table.iloc[3]["max_drawdown"] == -0.0994
    means = config_means(table)
    assert list(means) == ["fake_alstm-0123abcd"] and means["fake_alstm-0123abcd"]["seeds"] == 3


def test_table_files_and_formatting(key_dir: Path, tmp_path: Path) -> None:
    _fake_runs(key_dir)
    table = bench_table([key_dir])
    md, csv = write_tables(table, tmp_path)
    lines = md.read_text().splitlines()
    assert lines[0].startswith("| config | seeds | IC | ICIR | Rank IC | Rank ICIR | Ann. return")
    assert lines[1] == "|" + "---|" * 11 and len(lines) == 2 + 4
    assert "| fake_alstm-0123abcd (mean ± std) | 3 | 0.0333 ± 0.0153 |" in lines[2]
    assert "| Qlib ALSTM Alpha360 (published) | 20 | 0.0497 ± 0.00 | 0.3829 ± 0.04 |" in lines[5]
    assert "| – | – | – |" in lines[3]  # the ensemble has no backtest numbers
    back = pd.read_csv(csv)
    assert back["IC"].iloc[0] == table["IC"].iloc[0]  # the CSV keeps every digit
    assert cell(0.0362, 0.01) == "0.0362 ± 0.0100" and cell(-0.1, math.nan) == "-0.1000"
    assert cell(math.nan, 0.1) == "–"
    page = write_bench_html(table, [key_dir], tmp_path).read_text()
    assert page.count("<img") == 1 and "0.0333 ± 0.0153" in page
