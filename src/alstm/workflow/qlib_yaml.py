"""Translate a Qlib benchmark workflow YAML (``qrun`` format) into an alstm run config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from alstm.workflow.config import ConfigError, safe_load

#: Qlib class names → alstm registered names.
HANDLERS = {"Alpha158": "alpha158", "Alpha360": "alpha360"}
STRATEGIES = {"TopkDropoutStrategy": "TopkDropout"}
MODELS = {"ALSTM": "ALSTM"}
EXCHANGE_KEYS = ("limit_threshold", "deal_price", "open_cost", "close_cost", "min_cost")


def _component(spec: dict[str, Any], mapping: dict[str, str], what: str) -> tuple[str, dict]:
    cls = spec.get("class")
    if cls not in mapping:
        raise ConfigError(
            f"{what}: class {cls!r} has no alstm equivalent; known: {sorted(mapping)}"
        )
    return mapping[cls], dict(spec.get("kwargs") or {})


def from_qlib(tree: dict[str, Any], provider: str | None = None) -> dict[str, Any]:
    """An alstm config (plain dict) equivalent to a parsed Qlib workflow YAML."""
    try:
        task = tree["task"]
        model_spec, ds_spec = task["model"], task["dataset"]
    except (KeyError, TypeError):
        raise ConfigError(
            "not a Qlib workflow config: expected task.model and task.dataset"
        ) from None
    ds_kwargs = ds_spec.get("kwargs", {})
    factors, hk = _component(ds_kwargs["handler"], HANDLERS, "task.dataset.kwargs.handler")
    model_name, model_kwargs = _component(model_spec, MODELS, "task.model")
    labels = hk.get("label") or ["Ref($close, -2)/Ref($close, -1) - 1"]
    market = hk.get("instruments", tree.get("market", "csi300"))

    def processors(key: str) -> list[dict[str, Any]]:
        return [
            {"name": p["class"], "kwargs": dict(p.get("kwargs") or {})} for p in hk.get(key, [])
        ]

    dataset: dict[str, Any] = {
        "name": ds_spec["class"],
        "segments": {k: list(v) for k, v in ds_kwargs["segments"].items()},
    }
    if ds_spec["class"] == "TSDatasetH":
        dataset["step_len"] = ds_kwargs.get("step_len", 30)
    elif factors == "alpha360":
        dataset["d_feat"] = model_kwargs.get("d_feat", 6)
    records: dict[str, Any] = {"signal_analysis": None, "portfolio_analysis": None}
    benchmark = tree.get("benchmark", "SH000300")
    for rec in task.get("record", []):
        kwargs = rec.get("kwargs") or {}
        if rec.get("class") == "SigAnaRecord":
            records["signal_analysis"] = {
                "ana_long_short": bool(kwargs.get("ana_long_short", False)),
                "ann_scaler": int(kwargs.get("ann_scaler", 252)),
            }
        elif rec.get("class") == "PortAnaRecord":
            cfg = kwargs["config"]
            strategy, skw = _component(cfg["strategy"], STRATEGIES, "PortAnaRecord strategy")
            skw.pop("signal", None)
            bt = cfg["backtest"]
            benchmark = bt.get("benchmark", benchmark)
            records["portfolio_analysis"] = {
                "strategy": {"name": strategy, "kwargs": skw},
                "backtest": {
                    "start_time": bt["start_time"],
                    "end_time": bt["end_time"],
                    "account": float(bt.get("account", 1e9)),
                    "benchmark": benchmark,
                    "exchange": {
                        k: v for k, v in bt.get("exchange_kwargs", {}).items() if k in EXCHANGE_KEYS
                    },
                },
            }
    return {
        "name": f"{model_name.lower()}_{factors}",
        "seed": model_kwargs.pop("seed", 0),
        "data": {
            "provider": provider or tree.get("qlib_init", {}).get("provider_uri", ""),
            "market": market,
            "benchmark": benchmark,
        },
        "handler": {
            "factors": factors,
            "label": {f"LABEL{i}": expr for i, expr in enumerate(labels)},
            **{k: hk[k] for k in ("start_time", "end_time", "fit_start_time", "fit_end_time")},
            "infer_processors": processors("infer_processors"),
            "learn_processors": processors("learn_processors"),
        },
        "dataset": dataset,
        "model": {"name": model_name, "kwargs": model_kwargs},
        "records": records,
    }


def convert_file(path: str | Path, provider: str | None = None) -> str:
    """YAML text of the alstm config for a Qlib workflow YAML file."""
    tree = safe_load(Path(path).read_text())
    return yaml.safe_dump(from_qlib(tree, provider), sort_keys=False, default_flow_style=None)
