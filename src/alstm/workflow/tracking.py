"""Experiment tracking with MLflow: params, per-epoch scores, metrics and run files."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alstm.workflow.config import RunConfig, TrackingConfig

log = logging.getLogger("alstm.tracking")
ARTIFACTS = ("config.yaml", "meta.json", "metrics.json", "evals.json", "report.html")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (lists kept as their string form)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def track_run(
    tracking: TrackingConfig,
    config: RunConfig,
    run_dir: Path,
    metrics: Mapping[str, Any],
    evals: Mapping[str, Any],
) -> str | None:
    """Log a finished run to MLflow (default: a local SQLite store ``./mlruns/mlflow.db`` with
    artifacts beside it; ``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db`` shows it);
    returns the MLflow run id, or None when tracking is off. A failure is logged, never fatal."""
    if not tracking.enabled:
        return None
    try:
        import mlflow

        uri, store = tracking.uri, Path("mlruns").resolve()
        if uri is None:
            store.mkdir(exist_ok=True)
            uri = f"sqlite:///{store / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        name = tracking.experiment or config.name
        if mlflow.get_experiment_by_name(name) is None:
            artifacts = (store / "artifacts").as_uri() if tracking.uri is None else None
            mlflow.create_experiment(name, artifact_location=artifacts)
        mlflow.set_experiment(name)
        with mlflow.start_run(run_name=run_dir.name) as active:
            params = flatten(config.model_dump(mode="json", exclude={"tracking"}))
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            for key, name in (("train", "train_score"), ("valid", "valid_score"),
                              ("train_loss", "train_loss")):  # fmt: skip
                for epoch, value in enumerate(evals.get(key, [])):
                    mlflow.log_metric(name, float(value), step=epoch)
            final = {k.replace(" ", "_"): float(v) for k, v in flatten(metrics).items()
                     if isinstance(v, int | float)}  # fmt: skip
            mlflow.log_metrics(final)
            for name in ARTIFACTS:
                if (run_dir / name).exists():
                    mlflow.log_artifact(str(run_dir / name))
            return active.info.run_id
    except Exception as err:  # tracking must never lose a finished run
        log.warning(
            "MLflow tracking failed (%s: %s); the run folder is complete", type(err).__name__, err
        )
        return None
