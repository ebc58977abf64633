"""Write a :class:`Panel` as a Qlib data directory, atomically (temporary folder, then rename)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from alstm.data.errors import DataError
from alstm.data.panel import Panel
from alstm.data.qlib_format import (
    BIN_SUFFIX,
    Span,
    mask_to_spans,
    write_bin,
    write_instruments,
)


@contextmanager
def atomic_dir(dst: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``dst`` that replaces ``dst`` only if the block succeeds."""
    dst = Path(dst)
    if dst.exists() and not overwrite:
        if dst.is_dir() and not any(dst.iterdir()):
            dst.rmdir()
        else:
            raise DataError(f"{dst}: already exists (pass overwrite to replace it)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    try:
        yield tmp
        if dst.exists():
            old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
            os.replace(dst, old)
            os.replace(tmp, dst)
            shutil.rmtree(old)
        else:
            os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_qlib_dir(
    panel: Panel,
    dst: str | Path,
    *,
    markets: dict[str, dict[str, list[Span]]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``panel`` to ``dst`` in Qlib's format.

    Each instrument's series covers its stored span ``[first, last]``; ``instruments/all.txt``
    lists that span; one ``instruments/<market>.txt`` is written per membership mask of the panel
    (or per entry of ``markets``, which overrides the masks with explicit spans).
    """
    cal = panel.calendar
    all_spans: dict[str, list[Span]] = {}
    with atomic_dir(dst, overwrite=overwrite) as tmp:
        (tmp / "calendars").mkdir()
        (tmp / "calendars" / "day.txt").write_text("".join(f"{d:%Y-%m-%d}\n" for d in cal))
        features = tmp / "features"
        features.mkdir()
        for j, sym in enumerate(panel.instruments):
            s, e = int(panel.first[j]), int(panel.last[j])
            if s < 0:
                continue
            folder = features / sym.lower()
            folder.mkdir()
            for name, arr in panel.fields.items():
                write_bin(folder / f"{name}{BIN_SUFFIX}", s, np.asarray(arr[s : e + 1, j]))
            all_spans[sym] = [(cal[s], cal[e])]
        (tmp / "instruments").mkdir()
        write_instruments(tmp / "instruments" / "all.txt", all_spans)
        market_spans = {
            m: mask_to_spans(mask, cal, panel.instruments) for m, mask in panel.membership.items()
        }
        market_spans.update(markets or {})
        for m, spans in market_spans.items():
            if m.lower() == "all":
                continue
            write_instruments(tmp / "instruments" / f"{m}.txt", spans)
    return Path(dst)
