"""check_data_dir: errors are collected (not raised), coverage is right, odd values are located."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from alstm.data import check as check_mod
from alstm.data.check import CheckReport, check_data_dir
from alstm.data.provider import QlibDataDir
from alstm.data.synth import write_synth

SMALL = {"n_instruments": 30, "n_members": 10, "start": "2019-01-01", "end": "2019-12-31"}
REAL = Path(os.environ.get("ALSTM_SHARED_DATA", Path(__file__).parents[3] / "shared" / "data"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synth(tmp_path_factory.mktemp("check") / "syn", seed=2, **SMALL)


@pytest.fixture
def data(clean: Path, tmp_path: Path) -> Path:
    """A private copy of the clean directory, to break."""
    return Path(shutil.copytree(clean, tmp_path / "syn"))


def _bin(root: Path, sym: str, field: str) -> Path:
    return root / "features" / sym.lower() / f"{field}.day.bin"


def _traded(root: Path, sym: str, k: int = 10) -> pd.Timestamp:
    """The k-th day with data of ``sym``."""
    panel = QlibDataDir(root).load(["close"], instruments=[sym])
    return panel.calendar[np.nonzero(~np.isnan(panel["close"][:, 0]))[0][k]]


def _poke(root: Path, sym: str, field: str, day: pd.Timestamp, value: float) -> None:
    """Overwrite one stored value."""
    path = _bin(root, sym, field)
    raw = np.fromfile(path, dtype="<f4")
    cal = QlibDataDir(root).calendar
    raw[1 + cal.get_loc(day) - int(raw[0])] = value
    raw.tofile(path)


def _stock(root: Path, k: int = 0) -> str:
    return [s for s in QlibDataDir(root).instruments() if s != "SYN100"][k]


def _kinds(report: CheckReport) -> set[str]:
    return {f.kind for f in report.errors}


def test_clean_directory(clean: Path) -> None:
    report = check_data_dir(clean)
    assert report.ok and report.errors == [] and report.n_warnings == 0
    cov = report.coverage
    data = QlibDataDir(clean)
    assert cov.n_instruments == 31 and cov.n_days == len(data.calendar)
    assert (cov.start, cov.end) == (data.calendar[0], data.calendar[-1])
    assert set(cov.fields) == set(data.fields())
    assert 0.0 < cov.nan_share["close"] < 0.1 and cov.nan_share["vwap"] > cov.nan_share["close"]
    assert set(cov.markets) == {"all", "syn100"}
    syn = cov.markets["syn100"]
    assert syn.members_max == 10 and syn.members_min >= 8 and syn.n_symbols >= 10
    assert cov.markets["all"].n_symbols == 31


def test_missing_directory(tmp_path: Path) -> None:
    report = check_data_dir(tmp_path / "nope")
    assert not report.ok and "does not exist" in report.errors[0].message


def test_missing_calendar_stops_before_features(data: Path) -> None:
    (data / "calendars" / "day.txt").unlink()
    report = check_data_dir(data)
    assert _kinds(report) == {"calendar", "skipped"}


@pytest.mark.parametrize("what", ["unsorted", "duplicate"])
def test_bad_calendar(data: Path, what: str) -> None:
    path = data / "calendars" / "day.txt"
    lines = path.read_text().splitlines()
    lines[5] = lines[3] if what == "duplicate" else lines[6]
    path.write_text("\n".join(lines) + "\n")
    report = check_data_dir(data)
    assert not report.ok and what in report.errors[0].message


def test_bin_errors_are_collected_not_raised(data: Path) -> None:
    a, b, c = _stock(data, 0), _stock(data, 1), _stock(data, 2)
    with open(_bin(data, a, "close"), "ab") as fh:  # truncated float32
        fh.write(b"\x00\x00")
    raw = np.fromfile(_bin(data, b, "volume"), dtype="<f4")  # runs past the calendar end
    np.concatenate([raw, np.ones(400, "<f4")]).tofile(_bin(data, b, "volume"))
    _bin(data, c, "vwap").unlink()  # missing field
    report = check_data_dir(data)
    assert not report.ok
    found = {(f.kind, f.instrument, f.field) for f in report.errors}
    assert ("unreadable", a, "close") in found
    assert ("unreadable", b, "volume") in found
    assert ("missing", c, "vwap") in found
    assert any("multiple of 4" in f.message for f in report.errors)
    assert any("past the calendar end" in f.message for f in report.errors)


def test_misaligned_fields(data: Path) -> None:
    sym = _stock(data, 3)
    path = _bin(data, sym, "open")
    raw = np.fromfile(path, dtype="<f4")
    raw[0] += 1  # same length, shifted one day
    raw[:-1].tofile(path)
    report = check_data_dir(data)
    bad = [f for f in report.errors if f.kind == "misaligned"]
    assert len(bad) == 1 and bad[0].instrument == sym and "open" in bad[0].message


def test_market_symbol_without_data_and_bad_instruments_file(data: Path) -> None:
    with open(data / "instruments" / "syn100.txt", "a") as fh:
        fh.write("SH699999\t2019-01-02\t2019-06-28\n")
    (data / "instruments" / "broken.txt").write_text("SH600000 2019-01-02\n")
    report = check_data_dir(data)
    kinds = {(f.kind, f.instrument) for f in report.errors}
    assert ("no data", "SH699999") in kinds
    assert any(f.kind == "instruments" and "broken.txt" in f.message for f in report.errors)


def test_all_txt_span_mismatch_is_a_warning(data: Path) -> None:
    path = data / "instruments" / "all.txt"
    lines = path.read_text().splitlines()
    sym, _, end = lines[0].split("\t")
    lines[0] = f"{sym}\t1990-01-01\t{end}"
    path.write_text("\n".join(lines) + "\n")
    report = check_data_dir(data)
    assert report.ok and report.warning_counts["all.txt span"] == 1
    assert report.warnings[0].instrument == sym


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("close", -1.0, "non-positive price"),
        ("vwap", 0.0, "non-positive price"),
        ("low", 1e6, "high < low"),
        ("close", 1e6, "close outside [low, high]"),
        ("open", 1e-3, "open outside [low, high]"),
        ("vwap", 1e6, "vwap outside [low, high]"),
        ("volume", -5.0, "negative volume"),
        ("factor", 0.0, "factor <= 0"),
        ("change", 0.5, "change inconsistent"),
    ],
)
def test_suspicious_values_are_located(data: Path, field: str, value: float, kind: str) -> None:
    sym = _stock(data, 4)
    day = _traded(data, sym)
    _poke(data, sym, field, day, value)
    report = check_data_dir(data)
    assert report.ok  # warnings only
    hits = [w for w in report.warnings if w.kind == kind]
    assert hits, report.warning_counts
    assert (hits[0].instrument, hits[0].date) == (sym, day) and field in hits[0].field
    assert sym in str(hits[0]) and str(day.date()) in str(hits[0])


def test_close_jump_without_factor_change(data: Path) -> None:
    sym = _stock(data, 5)
    day = _traded(data, sym, 20)
    for f in ("open", "high", "low", "close", "vwap"):  # a consistent bar, 40% up
        raw = np.fromfile(_bin(data, sym, f), dtype="<f4")
        cal = QlibDataDir(data).calendar
        i = 1 + cal.get_loc(day) - int(raw[0])
        raw[i] *= 1.4
        raw.tofile(_bin(data, sym, f))
    report = check_data_dir(data)
    jumps = [w for w in report.warnings if w.kind.startswith("close jump")]
    assert jumps[0].instrument == sym and jumps[0].date == day
    assert "without a factor change" in jumps[0].message
    # the same move with a factor step (a corporate action) is not flagged
    raw = np.fromfile(_bin(data, sym, "factor"), dtype="<f4")
    i = 1 + QlibDataDir(data).calendar.get_loc(day) - int(raw[0])
    raw[i] *= 1.4
    raw.tofile(_bin(data, sym, "factor"))
    again = check_data_dir(data)
    assert not [w for w in again.warnings if w.kind.startswith("close jump") and w.date == day]


def test_warning_list_is_capped_but_counted(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check_mod, "MAX_PER_KIND", 3)
    for k in range(3):
        sym = _stock(data, k)
        for j in range(3):
            _poke(data, sym, "volume", _traded(data, sym, j), -1.0)
    report = check_data_dir(data)
    assert report.warning_counts["negative volume"] == 9
    assert len([w for w in report.warnings if w.kind == "negative volume"]) == 3


def test_render(data: Path) -> None:
    sym = _stock(data, 0)
    for j in range(5):
        _poke(data, sym, "volume", _traded(data, sym, j), -1.0)
    _bin(data, _stock(data, 1), "amount").unlink()
    console = Console(record=True, width=140)
    check_data_dir(data).render(console, max_warnings=2)
    text = console.export_text()
    for part in ("coverage", "NaN share", "syn100", "errors", "negative volume", "3 more warnings"):
        assert part in text
    assert "1 errors, 5 warnings" in text


def test_render_clean(clean: Path) -> None:
    console = Console(record=True, width=140)
    check_data_dir(clean).render(console)
    assert "OK, 0 warnings" in console.export_text()


@pytest.mark.realdata
def test_real_data() -> None:
    root = REAL / "cn_csi300"
    if not (root / "calendars").is_dir():
        pytest.skip(f"real data not found at {root}")
    report = check_data_dir(root)
    assert report.ok
    assert report.coverage.n_instruments == 813 and report.coverage.n_days == 3658
    assert report.coverage.markets["csi300"].members_median == 300
    # the only odd values are the relisting jumps the data README documents
    assert set(report.warning_counts) == {"close jump > 25%"}


def test_empty_instrument_folder_and_unreadable_file_are_one_error_each(data: Path) -> None:
    (data / "features" / "sh699999").mkdir()
    sym = _stock(data, 6)
    _bin(data, sym, "high").write_bytes(b"")
    report = check_data_dir(data)
    found = [(f.kind, f.instrument) for f in report.errors]
    assert found.count(("missing", "SH699999")) == 1
    assert found.count(("unreadable", sym)) == 1 and ("missing", sym) not in found
    assert "empty file" in next(f.message for f in report.errors if f.instrument == sym)
