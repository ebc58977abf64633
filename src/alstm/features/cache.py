"""On-disk cache of computed factor frames: ``.npy`` values + index + JSON manifest per key.

The key hashes the data directory's fingerprint, the expressions (names and text, in order), the
market and the span, and the package version, so any change recomputes. Entries are written into
a temporary folder and renamed, so an interrupted write never leaves a half entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from alstm import __version__
from alstm.data.writer import atomic_dir


def default_cache_dir() -> Path:
    """``$ALSTM_CACHE_DIR`` or ``~/.cache/alstm``."""
    return Path(os.environ.get("ALSTM_CACHE_DIR", Path.home() / ".cache" / "alstm"))


def cache_key(fingerprint: str, exprs: Mapping[str, str], **params: object) -> str:
    """Hex key of one factor computation."""
    payload = json.dumps(
        {"v": __version__, "data": fingerprint, "exprs": list(exprs.items()), **params},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def save_frame(path: Path, frame: pd.DataFrame, manifest: Mapping[str, object]) -> None:
    """Store a float32 frame indexed ``(datetime, instrument)`` under ``path`` atomically."""
    with atomic_dir(path, overwrite=True) as tmp:
        dates, date_codes = np.unique(frame.index.get_level_values(0), return_inverse=True)
        insts, inst_codes = np.unique(
            frame.index.get_level_values(1).astype(str), return_inverse=True
        )
        np.save(tmp / "values.npy", np.asfortranarray(frame.to_numpy(np.float32)))
        np.savez(
            tmp / "index.npz",
            dates=np.asarray(dates),
            date_codes=date_codes.astype(np.int32),
            instruments=insts.astype(str),
            inst_codes=inst_codes.astype(np.int32),
        )
        meta = {**manifest, "columns": list(frame.columns), "rows": len(frame)}
        (tmp / "manifest.json").write_text(json.dumps(meta, indent=1, default=str))


def load_frame(path: Path) -> pd.DataFrame:
    """Read a frame stored by :func:`save_frame` (no pickles involved)."""
    meta = json.loads((path / "manifest.json").read_text())
    values = np.load(path / "values.npy", allow_pickle=False)
    with np.load(path / "index.npz", allow_pickle=False) as idx:
        dates = pd.DatetimeIndex(idx["dates"])[idx["date_codes"]]
        insts = idx["instruments"].astype(object)[idx["inst_codes"]]
    index = pd.MultiIndex.from_arrays([dates, insts], names=["datetime", "instrument"])
    return pd.DataFrame(values, index=index, columns=meta["columns"], copy=False)


def cached(
    cache_dir: Path | None,
    key: str,
    compute: Callable[[], pd.DataFrame],
    manifest: Mapping[str, object],
) -> pd.DataFrame:
    """The frame stored under ``key``, computing and storing it on a miss (``cache_dir=None``
    bypasses the cache)."""
    if cache_dir is None:
        return compute()
    path = Path(cache_dir) / "factors" / key
    if (path / "manifest.json").exists():
        return load_frame(path)
    frame = compute()
    save_frame(path, frame, manifest)
    return frame
