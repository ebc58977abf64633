from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from alstm.workflow.config import ConfigError, RunConfig, dump_config, load_config, parse_config
from alstm.workflow.qlib_yaml import convert_file, from_qlib

ROOT = Path(__file__).resolve().parents[2]
QLIB_YAML = Path(__file__).resolve().parent / "qlib_yaml"


@pytest.mark.parametrize("name", ["alstm_alpha158", "alstm_alpha360", "demo"])
def test_shipped_configs_validate(name: str) -> None:
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    assert isinstance(cfg, RunConfig)
    assert cfg.model.name == "ALSTM"
    # A dump of the resolved config parses back to the same config.
    assert parse_config(dump_config(cfg)) == cfg


def test_anchors_and_overrides() -> None:
    cfg = load_config(
        ROOT / "configs" / "alstm_alpha158.yaml",
        ["model.kwargs.lr=5e-4", "data.provider=/tmp/x", "dataset.step_len=10"],
    )
    assert cfg.model.kwargs["lr"] == 5e-4
    assert cfg.data.provider == "/tmp/x" and cfg.dataset.step_len == 10
    assert cfg.records.portfolio_analysis is not None
    assert cfg.records.portfolio_analysis.backtest.benchmark == "SH000300"  # via *benchmark


BAD = """\
name: bad
data:
  provider: somewhere
  markett: csi300
handler:
  factors: alpha158
  start_time: 2008-01-01
  end_time: not-a-date
  fit_start_time: 2008-01-01
  fit_end_time: 2014-12-31
dataset:
  name: TSDatasetH
  step_len: 20
  segments:
    train: [2008-01-01, 2014-12-31]
    valid: [2015-01-01, 2016-12-31]
    test: [2017-01-01, 2020-08-01]
model:
  name: ALSTM
  kwargs: {lr: 1.0e-3}
  epochs: 3
"""


def test_every_problem_is_listed_with_path_and_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BAD, "bad.yaml")
    msg = str(info.value)
    assert msg.startswith("bad.yaml: 3 problem(s)")
    assert "data.markett (line 4): Extra inputs are not permitted" in msg
    assert "handler.end_time (line 8):" in msg
    assert "model.epochs (line 21): Extra inputs are not permitted" in msg


def test_unknown_components_list_registered_names() -> None:
    text = BAD.replace("  markett: csi300\n", "").replace("not-a-date", "2020-08-01")
    text = text.replace("name: ALSTM", "name: Transformer")
    text = text.replace("  epochs: 3\n", "").replace("factors: alpha158", "factors: alpha999")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    msg = str(info.value)
    assert "model.name: unknown 'Transformer'; registered: ALSTM" in msg
    assert "handler.factors: unknown 'alpha999'; registered: alpha158, alpha360" in msg


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("valid: [2015-01-01, 2016-12-31]", "valid: [2014-06-01, 2016-12-31]", "overlap"),
        ("test: [2017-01-01, 2020-08-01]", "test: [2017-01-01, 2021-08-01]", "outside the handler"),
        ("  step_len: 20\n", "", "TSDatasetH needs step_len"),
        ("fit_end_time: 2014-12-31", "fit_end_time: 2022-12-31", "fit span"),
    ],
)
def test_segment_and_span_errors(old: str, new: str, message: str) -> None:
    text = BAD.replace("  markett: csi300\n", "").replace("not-a-date", "2020-08-01")
    text = text.replace("  epochs: 3\n", "").replace(old, new)
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_bad_override_and_bad_yaml() -> None:
    with pytest.raises(ConfigError, match=r"expected KEY\.PATH=VALUE"):
        load_config(ROOT / "configs" / "demo.yaml", ["model.kwargs.lr"])
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("a: [1, 2")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config("/nonexistent.yaml")


@pytest.mark.parametrize("which", ["Alpha158", "Alpha360"])
def test_qlib_yaml_converts_to_the_shipped_config(which: str) -> None:
    text = convert_file(
        QLIB_YAML / f"workflow_config_alstm_{which}.yaml", "../shared/data/cn_csi300"
    )
    ours = parse_config(text)
    shipped = load_config(ROOT / "configs" / f"alstm_{which.lower()}.yaml")
    assert ours.handler.model_dump(exclude={"label"}) == shipped.handler.model_dump(
        exclude={"label"}
    )
    assert list(ours.handler.label.values()) == ["Ref($close, -2) / Ref($close, -1) - 1"]
    assert ours.dataset == shipped.dataset
    assert ours.records == shipped.records
    assert ours.model.kwargs["lr"] == 1e-3  # Qlib's YAML has the string "1e-3"
    assert ours.handler.start_time == dt.date(2008, 1, 1)


def test_converter_rejects_non_qlib_yaml() -> None:
    with pytest.raises(ConfigError, match=r"expected task\.model"):
        from_qlib({"foo": 1})
    tree = yaml.safe_load((QLIB_YAML / "workflow_config_alstm_Alpha158.yaml").read_text())
    tree["task"]["model"]["class"] = "LGBModel"
    with pytest.raises(ConfigError, match="class 'LGBModel' has no alstm equivalent"):
        from_qlib(tree)
