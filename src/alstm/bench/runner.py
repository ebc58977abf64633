"""The multi-seed bench: every config × every seed as one ordinary run on an :class:`Executor`.

Runs are keyed by the config (hash of the resolved config without seed and thread count) and
the seed, each into ``<out>/runs/<config name>-<hash8>/seed<k>/``. A run whose ``metrics.json``
exists is reused, a started one is resumed, a failing one is retried ``retries`` times and then
reported, so an interrupted bench continues where it stopped when started again.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alstm.bench.executors import Executor
from alstm.features.cache import default_cache_dir
from alstm.workflow.config import RunConfig
from alstm.workflow.pipeline import resolve_provider, run
from alstm.workflow.run_dir import RunDir

RUNS = "runs"


@dataclass(frozen=True)
class RunSpec:
    """One run of a bench: ``config`` (seed and threads set) into ``path``."""

    key: str
    seed: int
    config: RunConfig
    path: Path
    cache_dir: Path | None = None

    @property
    def label(self) -> str:
        """``<key>/seed<k>``, how the run is named in messages."""
        return f"{self.key}/seed{self.seed}"


@dataclass
class Progress:
    """Counts of a bench's runs, updated as they finish."""

    total: int
    reused: int = 0
    done: int = 0
    running: int = 0
    failed: int = 0
    retried: int = 0


@dataclass
class BenchResult:
    """Which runs a bench reused, ran and lost; ``failures`` maps a run to its last error."""

    keys: list[str]
    specs: list[RunSpec]
    progress: Progress
    failures: dict[str, str] = field(default_factory=dict)


#: Settings that do not change a run's results, left out of its key.
NOT_IN_KEY = ("seed", "tracking")
NOT_IN_KEY_KWARGS = ("n_threads", "verbose")


def config_key(config: RunConfig) -> str:
    """``<config name>-<hash8>``: the folder of a config's runs, the same for every seed, thread
    count, tracking and verbosity setting (none of them changes the result)."""
    tree = config.model_dump(mode="json")
    for name in NOT_IN_KEY:
        tree.pop(name, None)
    for name in NOT_IN_KEY_KWARGS:
        tree["model"]["kwargs"].pop(name, None)
    digest = hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()
    return f"{config.name}-{digest[:8]}"


def with_run_settings(config: RunConfig, seed: int, threads: int) -> RunConfig:
    """``config`` with ``seed``, ``threads`` torch threads (``model.kwargs.n_threads``) and an
    absolute data path (workers may start in another folder)."""
    tree = config.model_dump(mode="json")
    tree["seed"] = seed
    tree["model"]["kwargs"]["n_threads"] = threads
    if tree["data"]["provider"] != "synth":
        tree["data"]["provider"] = str(Path(tree["data"]["provider"]).expanduser().resolve())
    return RunConfig.model_validate(tree)


def plan(
    configs: Sequence[RunConfig],
    seeds: Sequence[int],
    out: Path,
    *,
    threads: int = 1,
    cache_dir: Path | None = None,
) -> list[RunSpec]:
    """Every config × seed as a :class:`RunSpec` under ``out/runs``, configs in order (paths
    made absolute: workers may start in another folder)."""
    out = Path(out).resolve()
    cache_dir = cache_dir.resolve() if cache_dir is not None else None
    specs = []
    for config in configs:
        key = config_key(config)
        for seed in seeds:
            path = out / RUNS / key / f"seed{seed}"
            specs.append(
                RunSpec(key, seed, with_run_settings(config, seed, threads), path, cache_dir)
            )
    return specs


def execute_run(spec: RunSpec) -> dict[str, Any]:
    """Run ``spec`` in this process (resuming what an earlier attempt left); its metrics."""
    started = spec.path.is_dir() and any(spec.path.iterdir())
    return run(spec.config, spec.path, resume=started, cache_dir=spec.cache_dir, step=_quiet)


def _quiet(message: str) -> None:
    """Workers run silently: the bench shows progress for all runs at once."""


def run_bench(
    configs: Sequence[RunConfig],
    seeds: Sequence[int],
    out: str | Path,
    executor: Executor,
    *,
    retries: int = 1,
    threads: int = 1,
    cache_dir: Path | None = None,
    on_progress: Callable[[Progress, str | None], None] | None = None,
) -> BenchResult:
    """Run every config with every seed on ``executor``, skipping finished runs; a run that
    raises is tried again up to ``retries`` times, then recorded in ``failures``.

    ``on_progress(progress, message)`` is called after every change (``message`` names a run
    that failed or is retried, else None).
    """
    specs = plan(configs, seeds, Path(out), threads=threads, cache_dir=cache_dir)
    todo = deque(s for s in specs if not RunDir(s.path).complete)
    progress = Progress(total=len(specs), reused=len(specs) - len(todo))
    result = BenchResult(list(dict.fromkeys(s.key for s in specs)), specs, progress)
    notify = on_progress or (lambda p, m: None)
    notify(progress, None)
    # Generate synthetic markets here, once, rather than in racing workers.
    for config in {s.config.data.model_dump_json(): s.config.data for s in todo}.values():
        resolve_provider(config, cache_dir or default_cache_dir())
    attempts: Counter[str] = Counter()
    running: dict[Any, RunSpec] = {}
    while todo or running:
        while todo and len(running) < executor.slots:
            spec = todo.popleft()
            attempts[spec.label] += 1
            running[executor.submit(execute_run, spec)] = spec
        progress.running = len(running)
        notify(progress, None)
        for handle, outcome in executor.wait(list(running)):
            spec = running.pop(handle)
            message = None
            if outcome.error is None:
                progress.done += 1
            elif attempts[spec.label] <= retries:
                progress.retried += 1
                todo.append(spec)
                message = f"{spec.label} failed ({outcome.error}); retrying"
            else:
                progress.failed += 1
                result.failures[spec.label] = outcome.error
                message = f"{spec.label} failed after {attempts[spec.label]} attempt(s)"
            progress.running = len(running)
            notify(progress, message)
    return result
