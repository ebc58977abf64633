from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alstm.data.errors import DataError
from alstm.data.provider import QlibDataDir
from alstm.data.qlib_format import write_bin


def test_load_dense_panel_with_spans_and_nan(tiny_dir: Path) -> None:
    panel = QlibDataDir(tiny_dir).load(["close", "volume"])
    assert panel.instruments == ("AAA", "BBB", "CCC")
    assert panel.shape == (10, 3)
    close = panel["close"]
    assert close.dtype == np.float32
    assert np.isnan(close[:2, 1]).all() and close[2, 1] == 12.0
    assert np.isnan(close[5, 1])  # suspension stays NaN
    assert np.isnan(close[6:, 2]).all()  # CCC stops after 6 days
    np.testing.assert_array_equal(panel.first, [0, 2, 0])
    np.testing.assert_array_equal(panel.last, [9, 9, 5])


def test_slice_and_market_membership(tiny_dir: Path) -> None:
    data = QlibDataDir(tiny_dir)
    panel = data.load(["close"], "2020-01-03", "2020-01-10", markets=["mkt"])
    assert panel.instruments == ("AAA", "BBB")  # CCC is not a member
    assert list(panel.calendar) == list(pd.bdate_range("2020-01-03", "2020-01-10"))
    np.testing.assert_array_equal(panel.first, [0, 0])
    member = panel.market_mask("mkt")
    # AAA: 01-03 and 01-08..; BBB: 01-06..01-10
    np.testing.assert_array_equal(member[:, 0], [1, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(member[:, 1], [0, 1, 1, 1, 1, 1])
    frame = panel.to_frame("mkt")
    assert frame.index.names == ["datetime", "instrument"]
    assert len(frame) == member.sum()
    assert frame["close"].isna().sum() == 1  # BBB's suspended day is kept as a NaN row


def test_case_insensitive_folders(tiny_dir: Path) -> None:
    (tiny_dir / "features").rename(tiny_dir / "Features")
    (tiny_dir / "calendars").rename(tiny_dir / "CALENDARS")
    (tiny_dir / "Features" / "aaa").rename(tiny_dir / "Features" / "AAA")
    bin_file = tiny_dir / "Features" / "AAA" / "close.day.bin"
    bin_file.rename(bin_file.with_name("Close.day.bin"))
    panel = QlibDataDir(tiny_dir).load(["close"])
    assert panel["close"][0, 0] == 10.0


def test_spans_are_read_once_and_handed_out_as_copies(tiny_dir: Path) -> None:
    data = QlibDataDir(tiny_dir)
    first = data.spans("mkt")
    first["AAA"].clear()
    (tiny_dir / "instruments" / "mkt.txt").unlink()
    assert data.spans("MKT")["AAA"]  # the cached spans, untouched by the caller's edit


def test_markets_and_fields(tiny_dir: Path) -> None:
    data = QlibDataDir(tiny_dir)
    assert data.markets() == ["all", "mkt"]
    assert data.fields() == ["close", "volume"]
    assert data.instruments("mkt") == ("AAA", "BBB")


def test_unknown_market_lists_known(tiny_dir: Path) -> None:
    with pytest.raises(DataError, match=r"unknown market 'csi300'.*\['all', 'mkt'\]"):
        QlibDataDir(tiny_dir).load(["close"], markets=["csi300"])


def test_missing_calendar(tiny_dir: Path) -> None:
    (tiny_dir / "calendars" / "day.txt").unlink()
    with pytest.raises(DataError, match=r"day\.txt"):
        QlibDataDir(tiny_dir).load(["close"])


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        QlibDataDir(tmp_path / "nope")


def test_missing_field_names_instrument_and_field(tiny_dir: Path) -> None:
    (tiny_dir / "features" / "bbb" / "volume.day.bin").unlink()
    with pytest.raises(DataError, match=r"BBB has no 'volume' file"):
        QlibDataDir(tiny_dir).load(["close", "volume"])


def test_truncated_bin(tiny_dir: Path) -> None:
    path = tiny_dir / "features" / "aaa" / "close.day.bin"
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(DataError, match=r"AAA close: size 42 bytes is not a multiple of 4"):
        QlibDataDir(tiny_dir).load(["close"])


def test_series_past_calendar_end(tiny_dir: Path) -> None:
    write_bin(tiny_dir / "features" / "aaa" / "close.day.bin", 5, np.ones(7, np.float32))
    with pytest.raises(DataError, match=r"AAA close: 7 values from 2020-01-08 run past"):
        QlibDataDir(tiny_dir).load(["close"])


def test_start_index_past_calendar_end(tiny_dir: Path) -> None:
    write_bin(tiny_dir / "features" / "aaa" / "close.day.bin", 12, np.ones(1, np.float32))
    with pytest.raises(DataError, match="start index 12 is past the calendar end"):
        QlibDataDir(tiny_dir).load(["close"])


def test_misaligned_fields(tiny_dir: Path) -> None:
    write_bin(tiny_dir / "features" / "bbb" / "volume.day.bin", 3, np.ones(7, np.float32))
    with pytest.raises(DataError, match=r"BBB volume: stored span 2020-01-06 .. 2020-01-14"):
        QlibDataDir(tiny_dir).load(["close", "volume"])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("2020-01-01\n2020-01-01\n", "duplicate date 2020-01-01"),
        ("2020-01-02\n2020-01-01\n", "unsorted date 2020-01-01"),
        ("2020-01-01\nnot-a-date\n", r"day.txt:2: unparsable date 'not-a-date'"),
        ("\n", "calendar is empty"),
    ],
)
def test_bad_calendar(tiny_dir: Path, text: str, match: str) -> None:
    (tiny_dir / "calendars" / "day.txt").write_text(text)
    with pytest.raises(DataError, match=match):
        _ = QlibDataDir(tiny_dir).calendar


def test_bad_instrument_line(tiny_dir: Path) -> None:
    (tiny_dir / "instruments" / "mkt.txt").write_text("AAA\t2020-01-01\n")
    with pytest.raises(DataError, match=r"mkt.txt:1: expected 'SYMBOL<TAB>start<TAB>end'"):
        QlibDataDir(tiny_dir).spans("mkt")


def test_instrument_without_folder(tiny_dir: Path) -> None:
    shutil.rmtree(tiny_dir / "features" / "bbb")
    with pytest.raises(DataError, match="instrument BBB has no features folder"):
        QlibDataDir(tiny_dir).load(["close"], markets=["mkt"])


def test_fingerprint_changes_with_data(tiny_dir: Path) -> None:
    data = QlibDataDir(tiny_dir)
    before = data.fingerprint()
    assert before == QlibDataDir(tiny_dir).fingerprint()
    write_bin(tiny_dir / "features" / "aaa" / "close.day.bin", 0, np.ones(9, np.float32))
    assert QlibDataDir(tiny_dir).fingerprint() != before
