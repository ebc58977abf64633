"""The HTML report of a run directory: sections, skipping, CLI, and a headless-Chromium look."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from matplotlib.image import imread
from typer.testing import CliRunner

from alstm.evaluate.risk import risk_analysis
from alstm.workflow.cli_report import report
from alstm.workflow.report import (
    RunDirError,
    attention_entropy,
    drawdown,
    render_report,
)
from tests.workflow.run_fixture import make_run_dir

FIGURES = (
    "cum-ic",
    "monthly-ic",
    "quantile",
    "excess-return",
    "drawdown",
    "turnover",
    "training",
    "attention-profile",
    "attention-entropy",
)
SECTIONS = ("metrics", "signal", "portfolio", "training", "attention")


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_report(make_run_dir(tmp_path_factory.mktemp("run") / "run1"))


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(report)
    return app


def test_report_has_every_section_and_embedded_figures(full_report: Path) -> None:
    assert full_report.name == "report.html" and full_report.parent.name == "run1"
    text = full_report.read_text(encoding="utf-8")
    for key in SECTIONS:
        assert f"<section id='{key}'>" in text
    for key in FIGURES:
        assert f"<figure id='fig-{key}'>" in text
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(images) == len(FIGURES)
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in images)
    # Self-contained: nothing fetched from the network, no scripts, no external style sheets.
    assert not re.search(r"https?://", text)
    assert "<script" not in text and "<link" not in text and "@import" not in text
    for value in ("0123456789abcdef", "sha256:feedbeef", "0.1.0", "2024-05-01T12:00:00"):
        assert value in text  # header from meta.json
    assert "fake_alstm" in text and "TSDatasetH" in text  # header from config.yaml
    assert "Rank ICIR" in text and "0.380000" in text and "max_drawdown" in text
    assert "<th>run time (s)</th><td class='mono'>12.5</td>" in text and "<th>seconds" not in text
    assert "class='skip'" not in text
    assert [p.name for p in full_report.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_report_skips_sections_whose_inputs_are_absent(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "bare", backtest=False, evals=False, attention=False)
    (run / "label.parquet").unlink()
    (run / "config.yaml").unlink()
    out = render_report(run, tmp_path / "sub" / "r.html")
    assert out == tmp_path / "sub" / "r.html" and not (run / "report.html").exists()
    text = out.read_text(encoding="utf-8")
    for key in SECTIONS:
        assert f"<section id='{key}'>" in text
    assert "<figure" not in text and "data:image/png" not in text
    assert "No label.parquet" in text
    assert "No report_normal.parquet" in text and "No portfolio metrics" in text
    assert "No evals.json" in text and "No attention.npz" in text
    assert "No config.yaml" in text and "Rank IC" in text


def test_training_curves_without_train_scores(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path / "r", backtest=False, evals=False, attention=False)
    evals = {"train": [], "valid": [-1.0, -0.9], "train_loss": [1.1, 0.95], "best_epoch": 1}
    (run / "evals.json").write_text(json.dumps(evals))
    text = render_report(run).read_text(encoding="utf-8")
    assert "<figure id='fig-training'>" in text and "No evals.json" not in text


def test_missing_or_incomplete_run_dir_raises(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="not a directory"):
        render_report(tmp_path / "nope")
    run = make_run_dir(tmp_path / "r", backtest=False, evals=False, attention=False)
    (run / "metrics.json").unlink()
    with pytest.raises(RunDirError, match=r"no metrics\.json"):
        render_report(run)
    (run / "metrics.json").write_text("{broken")
    with pytest.raises(RunDirError, match="invalid JSON"):
        render_report(run)


def test_drawdown_is_qlibs_sum_mode() -> None:
    r = pd.Series(np.random.default_rng(1).normal(0.0, 0.01, 300))
    dd = drawdown(r)
    assert (dd <= 0).all() and dd.iloc[0] == 0
    assert dd.min() == pytest.approx(risk_analysis(r)["max_drawdown"], abs=1e-15)


def test_attention_entropy_bounds() -> None:
    steps = 20
    w = np.full((3, steps), 1 / steps, dtype=np.float32)
    w[1] = 0
    w[1, -1] = 1  # all weight on today
    w[2, -2:] = [0.25, 0.75]
    w[2, :-2] = 0
    h = attention_entropy(w)
    expected = [math.log(steps), 0.0, -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]
    np.testing.assert_allclose(h, expected, atol=1e-6)


def test_cli_prints_path_and_fails_cleanly(tmp_path: Path) -> None:
    runner = CliRunner()
    run = make_run_dir(tmp_path / "r", n_days=25, n_instruments=12, evals=False)
    ok = runner.invoke(_cli(), [str(run)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip() == str(run / "report.html") and (run / "report.html").is_file()
    out = tmp_path / "elsewhere.html"
    assert runner.invoke(_cli(), [str(run), "--out", str(out)]).exit_code == 0 and out.is_file()
    (run / "metrics.json").unlink()
    bad = runner.invoke(_cli(), [str(run)])
    assert bad.exit_code == 2
    assert bad.output.startswith("error:") and "no metrics.json" in bad.output
    assert len(bad.output.strip().splitlines()) == 1 and "Traceback" not in bad.output


# --- headless Chromium -----------------------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Chromium not found: install Debian's chromium to run this test")


def _screenshot(html: Path, png: Path, profile: Path, height: int) -> np.ndarray:
    args = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
        f"--window-size=1200,{height}", f"--screenshot={png}", html.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert png.is_file(), f"no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    image = imread(png)
    return image[..., :3]  # drop alpha: [H, W, 3] floats in 0..1


def _white_regions(rgb: np.ndarray, block: int = 8) -> list[tuple[int, int, int, int]]:
    """Bounding boxes ``(top, left, bottom, right)`` in pixels of connected areas of pure-white
    blocks at least 240 × 120 px: on the grey page only the figures' backgrounds are white."""
    h, w = (rgb.shape[0] // block) * block, (rgb.shape[1] // block) * block
    white = (rgb[:h, :w] >= 0.999).all(axis=2)
    blocks = white.reshape(h // block, block, w // block, block).mean(axis=(1, 3)) > 0.6
    seen = np.zeros_like(blocks)
    boxes = []
    for start in zip(*np.nonzero(blocks), strict=True):
        if seen[start]:
            continue
        seen[start] = True
        queue, cells = deque([start]), []
        while queue:
            r, c = queue.popleft()
            cells.append((r, c))
            for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                inside = 0 <= nr < blocks.shape[0] and 0 <= nc < blocks.shape[1]
                if inside and blocks[nr, nc] and not seen[nr, nc]:
                    seen[nr, nc] = True
                    queue.append((nr, nc))
        rows, cols = zip(*cells, strict=True)
        top, left, bottom, right = min(rows), min(cols), max(rows) + 1, max(cols) + 1
        if (right - left) * block >= 240 and (bottom - top) * block >= 120:
            boxes.append((top * block, left * block, bottom * block, right * block))
    return boxes


def test_report_renders_in_headless_chromium(full_report: Path, tmp_path: Path) -> None:
    # Tall enough for the whole page (figures two per row at 1200 px).
    shot = _screenshot(full_report, tmp_path / "shot.png", tmp_path / "profile", height=4000)
    assert shot.shape[:2] == (4000, 1200)
    assert shot.std() > 0.05, "screenshot is blank"
    colours = np.unique((shot.reshape(-1, 3) * 255).round().astype(np.int64) @ [65536, 256, 1])
    assert len(colours) > 500, f"only {len(colours)} distinct colours: no figures drawn?"
    boxes = _white_regions(shot)
    assert len(boxes) == len(FIGURES), f"found {len(boxes)} figure-sized white areas: {boxes}"
    for top, left, bottom, right in boxes:
        area = shot[top:bottom, left:right]
        ink = (area < 0.9).any(axis=2).mean()
        saturated = ((area.max(axis=2) - area.min(axis=2)) > 0.25).sum()
        # Each figure has axes and text (ink) and coloured data marks (lines, bars, cells).
        assert 0.005 < ink < 0.8, f"figure at {(top, left)} looks empty (ink {ink:.4f})"
        assert saturated > 200, f"figure at {(top, left)} has no coloured marks"
