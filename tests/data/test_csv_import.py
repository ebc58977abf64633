"""import_csv: the real data's conventions on hand-computed rows, options, and located errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alstm.data.check import check_data_dir
from alstm.data.csv_import import import_csv
from alstm.data.errors import DataError
from alstm.data.provider import QlibDataDir

# raw quotes; A: zero volume on 2020-01-07 (a suspension), no row on 2020-01-06 (B trades)
A = """Date,Open,High,Low,Close,Adj Close,Volume
2020-01-02,10,11,9.5,10.5,5.25,1000
2020-01-03,10.5,11,10,10.8,5.4,2000
2020-01-07,10.8,11,10,10.9,5.45,0
2020-01-08,11,12,10.5,11.5,5.75,1500
"""
B = """date,open,high,low,close,volume,amount,factor
2020-01-06,5.2,5.3,5,5.1,200,1030,2
2020-01-03,5,5.5,4.9,5.2,100,510,2
2020-01-08,,,,,,,
"""
INDEX = "date,close,volume\n2020-01-02,4000,1e9\n2020-01-03,4010,1e9\n2020-01-06,4020,2e9\n"
INDEX += "2020-01-07,4000,1e9\n2020-01-08,4050,1e9\n"


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return _write(tmp_path / "csv", {"sh600000.csv": A, "sz000001.csv": B})


def _frame(root: Path, market: str | None = None) -> pd.DataFrame:
    data = QlibDataDir(root)
    return data.load(markets=[market] if market else []).to_frame(market)


def test_conventions_round_trip(src: Path, tmp_path: Path) -> None:
    out = import_csv(src, tmp_path / "qlib")
    data = QlibDataDir(out)
    # dropped rows: A's zero-volume 2020-01-07 (so no such day) and B's empty 2020-01-08
    dates = ["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-08"]
    assert list(data.calendar.strftime("%Y-%m-%d")) == dates
    assert data.instruments() == ("SH600000", "SZ000001")
    assert data.markets() == ["all"]
    df = _frame(out)
    a = df.xs("SH600000", level="instrument")
    # factor = adjclose / close = 0.5; prices × factor; volume / factor; amount = close × volume
    np.testing.assert_allclose(a["factor"], [0.5, 0.5, np.nan, 0.5])
    np.testing.assert_allclose(a["close"], [5.25, 5.4, np.nan, 5.75])
    np.testing.assert_allclose(a["open"], [5.0, 5.25, np.nan, 5.5])
    np.testing.assert_allclose(a["volume"], [2000, 4000, np.nan, 3000])
    np.testing.assert_allclose(a["amount"], [10500, 21600, np.nan, 17250])
    np.testing.assert_allclose(a["vwap"], [5.25, 5.4, np.nan, 5.75])  # amount / volume × factor
    # change over the previous stored row, across the suspended 2020-01-06
    np.testing.assert_allclose(
        a["change"], [np.nan, 5.4 / 5.25 - 1, np.nan, 5.75 / 5.4 - 1], rtol=1e-6
    )
    b = df.xs("SZ000001", level="instrument")
    assert list(b.index.strftime("%Y-%m-%d")) == ["2020-01-03", "2020-01-06"]  # span ends there
    np.testing.assert_allclose(b["factor"], 2.0)  # the factor column wins
    np.testing.assert_allclose(b["close"], [10.4, 10.2])
    np.testing.assert_allclose(b["volume"], [50, 100])
    np.testing.assert_allclose(b["amount"], [510, 1030])
    np.testing.assert_allclose(b["vwap"], [510 / 100 * 2, 1030 / 200 * 2], rtol=1e-6)
    np.testing.assert_allclose(b["change"], [np.nan, 5.1 / 5.2 - 1], rtol=1e-6)
    assert check_data_dir(out).ok


def test_factor_defaults_to_one_and_vwap_column_is_raw(tmp_path: Path) -> None:
    text = "date,open,high,low,close,volume,vwap\n2021-03-01,2,2.2,1.9,2.1,10,2.05\n"
    out = import_csv(_write(tmp_path / "csv", {"x.csv": text}), tmp_path / "q")
    row = _frame(out).iloc[0]
    assert row["factor"] == 1 and row["vwap"] == pytest.approx(2.05) and row["amount"] == 21


def test_column_mapping_date_format_and_symbols(tmp_path: Path) -> None:
    text = "TDATE,O,H,L,C,VOL,ADJ\n20200102,10,11,9,10,100,20\n20200103,10,11,9,11,100,22\n"
    src = _write(tmp_path / "csv", {"quotes_600519.csv": text, "quotes_000002.csv": text})
    cols = {"date": "tdate", "open": "O", "high": "H", "low": "L", "close": "C", "volume": "VOL"}
    out = import_csv(
        src,
        tmp_path / "q",
        columns={**cols, "adjclose": "adj"},
        date_format="%Y%m%d",
        symbol_pattern=r"quotes_(?P<symbol>\d+)",
        prefix="SH",
    )
    df = _frame(out)
    assert QlibDataDir(out).instruments() == ("SH000002", "SH600519")
    np.testing.assert_allclose(df["factor"], 2.0)
    assert str(df.index.get_level_values(0)[0].date()) == "2020-01-02"


def test_lower_case_symbols_and_glob(tmp_path: Path) -> None:
    src = _write(tmp_path / "csv", {"aapl.txt": A, "skip.csv": "garbage"})
    out = import_csv(src, tmp_path / "q", glob="*.txt", upper=False)
    assert QlibDataDir(out).instruments() == ("AAPL",)  # the reader upper-cases folder names
    assert (out / "features" / "aapl").is_dir()


def test_benchmark_membership_and_progress(src: Path, tmp_path: Path) -> None:
    index = tmp_path / "index.csv"
    index.write_text(INDEX)
    members = tmp_path / "csi.csv"
    members.write_text(
        "symbol,start,end\nsh600000,2020-01-01,2020-01-05\nSZ000001,2020-01-03,2020-12-31\n"
    )
    calls: list[tuple[int, int, str]] = []
    out = import_csv(
        src,
        tmp_path / "q",
        benchmark_csv=index,
        benchmark_symbol="sh000300",
        membership_csv=members,
        progress=lambda *a: calls.append(a),
    )
    data = QlibDataDir(out)
    assert data.markets() == ["all", "csi"]
    assert (out / "instruments" / "csi.txt").read_text() == (
        "SH600000\t2020-01-01\t2020-01-05\nSZ000001\t2020-01-03\t2020-12-31\n"
    )
    bench = _frame(out).xs("SH000300", level="instrument")
    assert len(bench) == 5 and (bench["factor"] == 1).all() and bench["vwap"].isna().all()
    assert bench["open"].isna().all() and bench["volume"].iloc[2] == 2e9
    np.testing.assert_allclose(
        bench["change"].iloc[1:], [0.0025, 4020 / 4010 - 1, 4000 / 4020 - 1, 0.0125], rtol=1e-6
    )
    assert calls == [(1, 4, "SH600000"), (2, 4, "SZ000001"), (3, 4, "SH000300"), (4, 4, "written")]
    members_frame = _frame(out, "csi")
    assert set(members_frame.index.get_level_values("instrument")) == {"SH600000", "SZ000001"}


def test_market_without_membership_lists_every_stock(src: Path, tmp_path: Path) -> None:
    index = tmp_path / "idx.csv"
    index.write_text(INDEX)
    out = import_csv(src, tmp_path / "q", benchmark_csv=index, market="mine")
    text = (out / "instruments" / "mine.txt").read_text()
    assert text == "SH600000\t2020-01-02\t2020-01-08\nSZ000001\t2020-01-03\t2020-01-06\n"


def test_membership_in_src_dir_is_not_read_as_a_stock(src: Path, tmp_path: Path) -> None:
    (src / "members.csv").write_text("SH600000,2020-01-02,2020-01-03\n")  # no header
    out = import_csv(src, tmp_path / "q", membership_csv=src / "members.csv", market="m")
    assert QlibDataDir(out).instruments() == ("SH600000", "SZ000001")
    assert QlibDataDir(out).instruments("m") == ("SH600000",)


def test_overwrite(src: Path, tmp_path: Path) -> None:
    out = import_csv(src, tmp_path / "q")
    with pytest.raises(DataError, match="already exists"):
        import_csv(src, out)
    (src / "sz000001.csv").unlink()
    import_csv(src, out, overwrite=True)
    assert QlibDataDir(out).instruments() == ("SH600000",)


# ------------------------------------------------------------------------------------ errors

HEAD = "date,open,high,low,close,volume\n"
ROW1 = "2020-01-02,10,11,9,10,100\n"
ROW2 = "2020-01-03,10,11,9,10,100\n"


@pytest.mark.parametrize(
    ("text", "patterns"),
    [
        ("", ["sh600000.csv", "SH600000", "empty file"]),
        (HEAD, ["SH600000", "no rows"]),
        (
            "date,open,high,low,price,vol\n" + ROW1,
            ["SH600000", "close → 'close'", "volume → 'volume'", "columns found", "'price'"],
        ),
        (
            HEAD + ROW1 + "2020-13-45,1,1,1,1,1\n",
            ["column 'date', line 3", "unparsable date '2020-13-45'"],
        ),
        (HEAD + ROW1 + ROW2 + ROW1, ["column 'date'", "duplicate date 2020-01-02", "lines 2, 4"]),
        (
            HEAD + ROW1 + "2020-01-03,10,11,-9,10,100\n",
            ["column 'low', line 3 (2020-01-03)", "'-9'", "positive price"],
        ),
        (
            HEAD + ROW1 + "2020-01-03,10,11,9,10,-100\n",
            ["column 'volume', line 3 (2020-01-03)", "negative"],
        ),
        (
            HEAD + "2020-01-02,10,11,9,abc,100\n",
            ["column 'close', line 2", "'abc' is not a number"],
        ),
        (HEAD + "2020-01-02,10,,9,10,100\n", ["column 'high', line 2", "is empty"]),
        (HEAD + "2020-01-02,,,,,\n", ["no rows with data"]),
    ],
    ids=[
        "empty",
        "header-only",
        "missing-columns",
        "bad-date",
        "duplicate",
        "neg-price",
        "neg-volume",
        "not-number",
        "partial",
        "all-suspended",
    ],
)
def test_errors_name_file_instrument_column_and_row(
    tmp_path: Path, text: str, patterns: list[str]
) -> None:
    src = _write(tmp_path / "csv", {"a_ok.csv": HEAD + ROW1, "sh600000.csv": text})
    with pytest.raises(DataError) as err:
        import_csv(src, tmp_path / "q")
    msg = str(err.value)
    assert "sh600000.csv" in msg
    for p in patterns:
        assert p in msg, msg
    assert not (tmp_path / "q").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["csv"]  # no temporary folder left behind


def test_date_format_mismatch(tmp_path: Path) -> None:
    src = _write(tmp_path / "csv", {"x.csv": HEAD + ROW1})
    with pytest.raises(
        DataError, match=r"line 2: unparsable date '2020-01-02' with format '%Y%m%d'"
    ):
        import_csv(src, tmp_path / "q", date_format="%Y%m%d")


def test_explicit_optional_column_must_exist(tmp_path: Path) -> None:
    src = _write(tmp_path / "csv", {"x.csv": HEAD + ROW1})
    with pytest.raises(DataError, match=r"factor → 'fac'.*columns found"):
        import_csv(src, tmp_path / "q", columns={"factor": "fac"})


def test_non_positive_factor(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "csv",
        {"x.csv": "date,open,high,low,close,volume,factor\n2020-01-02,1,1,1,1,1,0\n"},
    )
    with pytest.raises(DataError, match=r"column 'factor', line 2.*positive factor"):
        import_csv(src, tmp_path / "q")


def test_unknown_field_in_columns(src: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown field\(s\) \['price'\]"):
        import_csv(src, tmp_path / "q", columns={"price": "close"})


def test_no_files_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        import_csv(tmp_path / "nope", tmp_path / "q")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no files matching"):
        import_csv(tmp_path / "empty", tmp_path / "q")


def test_duplicate_symbols(tmp_path: Path) -> None:
    src = _write(tmp_path / "csv", {"sh600000.csv": HEAD + ROW1, "SH600000.csv": HEAD + ROW1})
    with pytest.raises(DataError, match="symbol SH600000 already read from"):
        import_csv(src, tmp_path / "q")


def test_symbol_pattern_must_match(src: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not match symbol pattern"):
        import_csv(src, tmp_path / "q", symbol_pattern=r"^\d+$")


def test_benchmark_errors(src: Path, tmp_path: Path) -> None:
    index = tmp_path / "sh600000.csv"
    index.write_text(INDEX)
    with pytest.raises(DataError, match="benchmark symbol SH600000 is also a stock"):
        import_csv(src, tmp_path / "q", benchmark_csv=index)
    index.write_text("date,open\n2020-01-02,1\n")
    with pytest.raises(DataError, match=r"missing column\(s\) close"):
        import_csv(src, tmp_path / "q", benchmark_csv=index, benchmark_symbol="IDX")


@pytest.mark.parametrize(
    ("text", "market", "pattern"),
    [
        ("SH600000,2020-01-02\n", None, r"members.csv, line 1: expected 'symbol,start,end'"),
        (
            "symbol,start,end\nSH600000,2020-01-02,soon\n",
            None,
            r"line 2: SH600000: unparsable date",
        ),
        (
            "SH600000,2020-02-02,2020-01-02\n",
            None,
            r"line 1: SH600000: span ends 2020-01-02 before",
        ),
        (
            "SH600000,2020-01-02,2020-01-03\nSZ999999,2020-01-02,2020-01-03\n",
            None,
            r"line 2: SZ999999 has no imported CSV",
        ),
        ("symbol,start,end\n", None, "no membership rows"),
        ("SH600000,2020-01-02,2020-01-03\n", "all", "not 'all'"),
    ],
)
def test_membership_errors(
    src: Path, tmp_path: Path, text: str, market: str | None, pattern: str
) -> None:
    members = tmp_path / "members.csv"
    members.write_text(text)
    with pytest.raises(DataError, match=pattern):
        import_csv(src, tmp_path / "q", membership_csv=members, market=market)
    assert not (tmp_path / "q").exists()
