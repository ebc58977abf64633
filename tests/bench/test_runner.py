"""`alstm bench` on a tiny synthetic market: local and Ray give the same table, an interrupted
bench resumes reusing finished runs, a failing run is retried and then reported."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Hashable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from alstm.bench.executors import Executor, Outcome, RayExecutor, describe
from alstm.bench.runner import config_key, run_bench
from alstm.bench.table import bench_table, ensemble_metrics, flat_metrics, write_tables
from alstm.cli import app
from alstm.model import alstm as alstm_model
from alstm.workflow.config import RunConfig, dump_config, load_config
from tests.tiny import ROOT, TINY

#: The pipeline tests' tiny market, one epoch per run.
TINY_BENCH = [*TINY, "model.kwargs.n_epochs=1"]
VARIANTS = {
    "a": ["name=tiny_a"],
    "b": ["name=tiny_b", "model.kwargs.hidden_size=4"],
    # 50 names to hold out of 40 instruments: the backtest raises after training, every time.
    "fail": ["name=tiny_fail", "records.portfolio_analysis.strategy.kwargs.topk=50"],
}


class InProcess(Executor):
    """Runs each call in the test process, one at a time, when it is waited for (so that
    monkeypatches reach it and a KeyboardInterrupt stops the bench like a kill)."""

    slots = 1

    def __init__(self) -> None:
        self.pending: dict[int, tuple[Callable[[Any], Any], Any]] = {}

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> Hashable:
        handle = len(self.pending) + 1
        self.pending[handle] = (fn, arg)
        return handle

    def wait(self, handles: Collection[Hashable]) -> list[tuple[Hashable, Outcome]]:
        handle = min(handles)  # type: ignore[type-var]
        fn, arg = self.pending.pop(handle)  # type: ignore[call-overload]
        try:
            return [(handle, Outcome(value=fn(arg)))]
        except Exception as err:
            return [(handle, Outcome(error=describe(err)))]

    def close(self) -> None:
        self.pending.clear()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("bench")
    for name, extra in VARIANTS.items():
        config = load_config(ROOT / "configs" / "demo.yaml", TINY_BENCH + extra)
        (base / f"{name}.yaml").write_text(dump_config(config))
    return base


def _configs(base: Path, *names: str) -> list[RunConfig]:
    return [load_config(base / f"{n}.yaml") for n in names]


def _bench(base: Path, out: Path, *args: str) -> Any:
    cmd = ["bench", *args, "--out", str(out), "--cache-dir", str(base / "cache")]
    return CliRunner().invoke(app, cmd)


@pytest.fixture(scope="module")
def local(base: Path) -> tuple[Path, str]:
    """A 2-config × 2-seed bench on the local process pool, through the CLI."""
    out = base / "local"
    res = _bench(base, out, str(base / "a.yaml"), str(base / "b.yaml"), "--seeds", "2")
    assert res.exit_code == 0, res.output
    return out, res.stdout


def test_local_bench_writes_runs_table_and_means(base: Path, local: tuple[Path, str]) -> None:
    out, stdout = local
    keys = [config_key(c) for c in _configs(base, "a", "b")]
    for key in keys:
        for seed in (1, 2):
            run = out / "runs" / key / f"seed{seed}"
            assert (run / "metrics.json").is_file() and (run / "pred.parquet").is_file()
            config = load_config(run / "config.yaml")
            assert config.seed == seed and config.model.kwargs["n_threads"] == 1
    assert all((out / f).is_file() for f in ("table.md", "table.csv", "bench.html"))
    *_, last = stdout.strip().splitlines()
    means = json.loads(last)
    assert list(means) == keys and means[keys[0]]["seeds"] == 2
    assert f"| {keys[1]} ensemble | 2 |" in stdout


def test_ray_gives_the_same_table(base: Path, local: tuple[Path, str]) -> None:
    out = base / "ray"
    with RayExecutor(threads_per_worker=1, num_cpus=2) as ray_pool:
        assert ray_pool.slots == 2
        result = run_bench(
            _configs(base, "a", "b"), [1, 2], out, ray_pool, cache_dir=base / "cache"
        )
    assert not result.failures and result.progress.done == 4
    _, csv = write_tables(bench_table([out / "runs" / k for k in result.keys]), out)
    assert csv.read_text() == (local[0] / "table.csv").read_text()


def test_single_run_ensemble_is_the_run(base: Path, local: tuple[Path, str]) -> None:
    run = local[0] / "runs" / config_key(_configs(base, "a")[0]) / "seed1"
    expected = flat_metrics(json.loads((run / "metrics.json").read_text()))
    # Standardizing per date changes neither correlations nor the top-k choice.
    assert ensemble_metrics([run]) == pytest.approx(expected, rel=1e-9)


def test_interrupted_bench_resumes_reusing_finished_runs(
    base: Path, local: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = base / "killed"
    configs = _configs(base, "a", "b")
    real = alstm_model.train_epoch
    calls = {"n": 0}

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:  # one epoch per run: the third run dies while training
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(alstm_model, "train_epoch", counting)
    with pytest.raises(KeyboardInterrupt):
        run_bench(configs, [1, 2], out, InProcess(), cache_dir=base / "cache")
    runs = out / "runs"
    finished = sorted(runs.glob("*/seed*/metrics.json"))
    assert len(finished) == 2 and (runs / config_key(configs[1]) / "seed1").is_dir()
    mtimes = [p.stat().st_mtime_ns for p in finished]

    result = run_bench(configs, [1, 2], out, InProcess(), cache_dir=base / "cache")
    assert (result.progress.reused, result.progress.done, result.progress.failed) == (2, 2, 0)
    assert [p.stat().st_mtime_ns for p in finished] == mtimes
    assert calls["n"] == 3 + 2  # only the killed and the missing run trained again
    _, csv = write_tables(bench_table([runs / k for k in result.keys]), out)
    assert csv.read_text() == (local[0] / "table.csv").read_text()


def test_failing_run_is_retried_then_reported(base: Path) -> None:
    out = base / "failing"
    res = _bench(base, out, str(base / "fail.yaml"), "--seeds", "1", "--workers", "1")
    label = f"{config_key(_configs(base, 'fail')[0])}/seed1"
    assert res.exit_code == 1, res.output
    assert f"{label} failed (ValueError: topk=50 exceeds the 21 instruments" in res.output
    assert "retrying" in res.output and f"{label} failed after 2 attempt(s)" in res.output
    assert f"failed: {label}: ValueError: topk=50" in res.output
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {}
    assert (out / "table.md").is_file()


def test_config_key_ignores_settings_that_keep_results(base: Path) -> None:
    a, b = _configs(base, "a", "b")
    same = load_config(
        base / "a.yaml",
        ["seed=9", "model.kwargs.n_threads=4", "model.kwargs.verbose=false",
         "tracking.enabled=false"],
    )  # fmt: skip
    assert config_key(same) == config_key(a) and config_key(a).startswith("tiny_a-")
    assert config_key(load_config(base / "a.yaml", ["model.kwargs.lr=0.01"])) != config_key(a)
    assert len(config_key(b).split("-")[-1]) == 8
