"""Plain-file checkpoints: tensors through ``torch.save`` (read back with ``weights_only=True``),
everything else as JSON text; every file is written atomically (temporary file + rename)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT = "checkpoint.pt"  # the training state after the last completed epoch
WEIGHTS = "model.pt"  # the final (best) state_dict
CONFIG = "config.json"  # the hyperparameters that rebuild the model


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` through a temporary file, so a kill never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_json_atomic(obj: Any, path: Path) -> None:
    """Write ``obj`` as indented JSON to ``path`` through a temporary file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


def load_tensors(path: Path) -> Any:
    """Read a file written by ``save_atomic`` (tensors, numbers, strings, lists, dicts only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state(np_rng: np.random.Generator, device: torch.device) -> dict[str, Any]:
    """The state of every random generator training draws from: the numpy shuffle generator
    (JSON text), torch's CPU generator and, on a GPU, that device's generator (byte tensors)."""
    state = {"numpy": json.dumps(np_rng.bit_generator.state), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], np_rng: np.random.Generator, device: torch.device) -> None:
    """Put back what ``rng_state`` saved (the GPU generator only when training on a GPU again)."""
    np_rng.bit_generator.state = json.loads(state["numpy"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
