from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alstm.data.errors import DataError
from alstm.data.provider import QlibDataDir
from alstm.data.writer import atomic_dir, write_qlib_dir


def test_round_trip(tiny_dir: Path, tmp_path: Path) -> None:
    src = QlibDataDir(tiny_dir).load(None, markets=["mkt"], instruments=["AAA", "BBB", "CCC"])
    dst = write_qlib_dir(src, tmp_path / "copy")
    back = QlibDataDir(dst).load(None, markets=["mkt"], instruments=["AAA", "BBB", "CCC"])
    assert back.instruments == src.instruments
    assert list(back.calendar) == list(src.calendar)
    for f in src.fields:
        np.testing.assert_array_equal(back[f], src[f])
    np.testing.assert_array_equal(back.first, src.first)
    np.testing.assert_array_equal(back.last, src.last)
    np.testing.assert_array_equal(back.market_mask("mkt"), src.market_mask("mkt"))
    assert (dst / "instruments" / "all.txt").read_text().splitlines()[2] == (
        "CCC\t2020-01-01\t2020-01-08"
    )
    # Byte-identical files: the original was written by the same writer primitives.
    for f in ("close", "volume"):
        assert (dst / "features" / "bbb" / f"{f}.day.bin").read_bytes() == (
            tiny_dir / "features" / "bbb" / f"{f}.day.bin"
        ).read_bytes()


def test_refuses_existing_without_overwrite(tiny_dir: Path, tmp_path: Path) -> None:
    panel = QlibDataDir(tiny_dir).load(None)
    write_qlib_dir(panel, tmp_path / "out")
    with pytest.raises(DataError, match="already exists"):
        write_qlib_dir(panel, tmp_path / "out")
    write_qlib_dir(panel, tmp_path / "out", overwrite=True)
    assert QlibDataDir(tmp_path / "out").instruments() == ("AAA", "BBB", "CCC")


def test_atomic_dir_leaves_nothing_on_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "out") as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_keeps_old_on_failure(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "out", overwrite=True) as tmp:
        (tmp / "new.txt").write_text("x")
        raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (tmp_path / "out" / "keep.txt").read_text() == "old"
