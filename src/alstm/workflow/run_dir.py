"""A run directory: plain files written atomically; complete only once ``metrics.json`` exists."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

COMPLETE_MARKER = "metrics.json"


class RunError(RuntimeError):
    """A run that cannot start or continue (e.g. its folder already holds a finished run)."""


class RunDir:
    """The folder of one run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def complete(self) -> bool:
        """True once the run finished (its ``metrics.json`` is written last)."""
        return (self.path / COMPLETE_MARKER).is_file()

    def prepare(self, *, resume: bool = False, overwrite: bool = False) -> None:
        """Create the folder; refuse a finished run unless ``overwrite``, and a started one
        unless ``resume`` (continue) or ``overwrite`` (start over)."""
        if self.path.exists() and any(self.path.iterdir()):
            if overwrite:
                shutil.rmtree(self.path)
            elif self.complete:
                raise RunError(f"{self.path} already holds a finished run (pass --overwrite)")
            elif not resume:
                raise RunError(
                    f"{self.path} holds an unfinished run: pass --resume to continue it "
                    "or --overwrite to start over"
                )
        elif resume:
            raise RunError(f"{self.path}: nothing to resume")
        self.path.mkdir(parents=True, exist_ok=True)

    def write_text(self, name: str, text: str) -> Path:
        """Write a text file atomically."""
        dst = self.path / name
        tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, dst)
        return dst

    def write_json(self, name: str, obj: Any) -> Path:
        """Write JSON atomically."""
        return self.write_text(name, json.dumps(obj, indent=1, default=str))

    def write_parquet(self, name: str, frame: pd.DataFrame, index: bool = True) -> Path:
        """Write a Parquet file atomically."""
        dst = self.path / name
        tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
        frame.to_parquet(tmp, index=index)
        os.replace(tmp, dst)
        return dst

    def read_json(self, name: str) -> Any:
        """Read a JSON file of the run."""
        return json.loads((self.path / name).read_text())
