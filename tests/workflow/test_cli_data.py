"""``alstm data`` commands through typer's CliRunner: exit codes, output, clean error lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from alstm.data.provider import QlibDataDir
from alstm.workflow.cli_data import data_app

runner = CliRunner()
SMALL = ["--instruments", "30", "--members", "10", "--start", "2019-01-01", "--end", "2019-12-31"]
CSV = "Date,Open,High,Low,Close,Adj Close,Volume\n2020-01-02,10,11,9,10,20,100\n"


def test_help_lists_the_commands() -> None:
    result = runner.invoke(data_app, ["--help"])
    assert result.exit_code == 0
    for name in ("synth", "check", "import-csv"):
        assert name in result.output


def test_synth_then_check(tmp_path: Path) -> None:
    dst = tmp_path / "syn"
    result = runner.invoke(data_app, ["synth", str(dst), "--seed", "4", *SMALL])
    assert result.exit_code == 0, result.output
    assert "31 instruments" in result.stdout and "syn100" in result.stdout
    assert QlibDataDir(dst).markets() == ["all", "syn100"]
    checked = runner.invoke(data_app, ["check", str(dst)])
    assert checked.exit_code == 0 and "OK, 0 warnings" in checked.stdout


def test_synth_refuses_existing_dir_with_one_line_error(tmp_path: Path) -> None:
    dst = tmp_path / "syn"
    assert runner.invoke(data_app, ["synth", str(dst), *SMALL]).exit_code == 0
    result = runner.invoke(data_app, ["synth", str(dst), *SMALL])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {dst}: already exists (pass overwrite to replace it)"
    ]
    assert "Traceback" not in result.output
    assert runner.invoke(data_app, ["synth", str(dst), "--overwrite", *SMALL]).exit_code == 0


def test_synth_bad_size_is_a_clean_error(tmp_path: Path) -> None:
    result = runner.invoke(data_app, ["synth", str(tmp_path / "s"), "--instruments", "5"])
    assert result.exit_code == 2 and result.stderr.startswith("error: need n_instruments")


def test_check_exits_1_on_errors(tmp_path: Path) -> None:
    dst = tmp_path / "syn"
    runner.invoke(data_app, ["synth", str(dst), *SMALL])
    sym = QlibDataDir(dst).instruments()[0].lower()
    (dst / "features" / sym / "close.day.bin").write_bytes(b"\x00\x00\x80")
    result = runner.invoke(data_app, ["check", str(dst)])
    assert result.exit_code == 1
    assert "1 errors" in result.stdout and "unreadable" in result.stdout
    missing = runner.invoke(data_app, ["check", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "does not exist" in missing.stdout


def test_import_csv(tmp_path: Path) -> None:
    src = tmp_path / "csv"
    src.mkdir()
    (src / "600000.csv").write_text(CSV.replace("Adj Close", "adj"))
    (tmp_path / "idx.csv").write_text("date,close\n2020-01-02,4000\n")
    (tmp_path / "m.csv").write_text("SH600000,2020-01-01,2020-06-30\n")
    dst = tmp_path / "q"
    args = ["import-csv", str(src), str(dst), "--col", "adjclose=adj", "--prefix", "SH"]
    args += ["--benchmark", str(tmp_path / "idx.csv"), "--benchmark-symbol", "SH000300"]
    args += ["--membership", str(tmp_path / "m.csv"), "--market", "csi300"]
    result = runner.invoke(data_app, args)
    assert result.exit_code == 0, result.output
    assert "2 instruments" in result.stdout and "csi300" in result.stdout
    data = QlibDataDir(dst)
    assert data.instruments() == ("SH000300", "SH600000")
    np.testing.assert_allclose(data.load(["factor"], instruments=["SH600000"])["factor"], 2.0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--col", "adjclose"], "--col 'adjclose': expected FIELD=COLUMN"),
        (["--col", "adjclose=nope"], "missing column(s) adjclose → 'nope'; columns found:"),
        (["--date-format", "%d/%m/%Y"], "unparsable date '2020-01-02' with format '%d/%m/%Y'"),
    ],
)
def test_import_csv_errors_are_one_red_line(tmp_path: Path, extra: list[str], message: str) -> None:
    src = tmp_path / "csv"
    src.mkdir()
    (src / "sh600000.csv").write_text(CSV)
    result = runner.invoke(data_app, ["import-csv", str(src), str(tmp_path / "q"), *extra])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "q").exists()
