"""The run configuration: a YAML file validated by pydantic, naming only registered components.

Every problem is reported at once with its YAML path and line, e.g.
``model.kwargs.lr (line 31): Input should be a valid number``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Date = dt.date
Span = tuple[Date, Date]


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads ``1e-3`` as a float (YAML 1.2), as configs expect."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with :class:`Loader` (never ``yaml.load``)."""
    return yaml.load(text, Loader=Loader)  # Loader subclasses SafeLoader


class ConfigError(ValueError):
    """A configuration that cannot be used; the message lists every problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Component(_Strict):
    """A registered component by name, with its keyword arguments."""

    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class SynthConfig(_Strict):
    """Parameters of ``alstm data synth`` when ``data.provider`` is ``synth``."""

    seed: int = 0
    n_instruments: int = 300
    start: Date = dt.date(2014, 1, 1)
    end: Date = dt.date(2020, 12, 31)
    n_members: int = 100


class DataConfig(_Strict):
    """Where the market data comes from and which market/benchmark to use."""

    provider: str
    synth: SynthConfig = Field(default_factory=SynthConfig)
    market: str = "csi300"
    benchmark: str = "SH000300"


class HandlerConfig(_Strict):
    """Factors, label, span and processors (Qlib's DataHandlerLP, process type "append")."""

    factors: str | None = "alpha158"
    factor_kwargs: dict[str, Any] = Field(default_factory=dict)
    extra_factors: dict[str, str] = Field(default_factory=dict)
    label: dict[str, str] = Field(
        default_factory=lambda: {"LABEL0": "Ref($close, -2)/Ref($close, -1) - 1"}
    )
    start_time: Date
    end_time: Date
    fit_start_time: Date
    fit_end_time: Date
    infer_processors: list[Component] = Field(default_factory=list)
    learn_processors: list[Component] = Field(default_factory=list)

    @model_validator(mode="after")
    def _spans(self) -> HandlerConfig:
        if self.end_time < self.start_time:
            raise ValueError(f"end_time {self.end_time} is before start_time {self.start_time}")
        if not (self.start_time <= self.fit_start_time <= self.fit_end_time <= self.end_time):
            raise ValueError(
                f"fit span {self.fit_start_time} .. {self.fit_end_time} must lie inside "
                f"{self.start_time} .. {self.end_time}"
            )
        if self.factors is None and not self.extra_factors:
            raise ValueError("no factors: set factors (alpha158, alpha360) or extra_factors")
        return self


class DatasetConfig(_Strict):
    """``DatasetH`` (flat rows, optionally served as ``d_feat`` × lags) or ``TSDatasetH``."""

    name: Literal["DatasetH", "TSDatasetH"]
    segments: dict[Literal["train", "valid", "test"], Span]
    step_len: int | None = None
    d_feat: int | None = None

    @field_validator("segments")
    @classmethod
    def _segments(cls, segs: dict[str, Span]) -> dict[str, Span]:
        missing = {"train", "valid", "test"} - set(segs)
        if missing:
            raise ValueError(f"missing segment(s) {sorted(missing)}")
        for name, (a, b) in segs.items():
            if b < a:
                raise ValueError(f"segment {name} ends {b} before it starts {a}")
        order = sorted(segs.items(), key=lambda kv: kv[1][0])
        for (n1, (_, e1)), (n2, (s2, _)) in itertools.pairwise(order):
            if s2 <= e1:
                raise ValueError(f"segments {n1} and {n2} overlap ({n2} starts {s2} <= {e1})")
        return segs

    @model_validator(mode="after")
    def _step_len(self) -> DatasetConfig:
        if self.name == "TSDatasetH" and (self.step_len is None or self.step_len < 1):
            raise ValueError("TSDatasetH needs step_len >= 1")
        return self


class ExchangeConfig(_Strict):
    """Exchange rules of the backtest (Qlib's exchange_kwargs)."""

    limit_threshold: float | None = 0.095
    deal_price: Literal["close", "open", "vwap"] = "close"
    open_cost: float = 0.0005
    close_cost: float = 0.0015
    min_cost: float = 5.0


class BacktestConfig(_Strict):
    """Backtest span, account and benchmark."""

    start_time: Date
    end_time: Date
    account: float = 1e8
    benchmark: str | None = None
    exchange: ExchangeConfig = Field(default_factory=ExchangeConfig)


class PortfolioConfig(_Strict):
    """PortAnaRecord: strategy and backtest."""

    strategy: Component = Field(
        default_factory=lambda: Component(name="TopkDropout", kwargs={"topk": 50, "n_drop": 5})
    )
    backtest: BacktestConfig


class SignalConfig(_Strict):
    """SigAnaRecord options."""

    ana_long_short: bool = False
    ann_scaler: int = 252


class RecordsConfig(_Strict):
    """What is evaluated after training."""

    signal_analysis: SignalConfig | None = Field(default_factory=SignalConfig)
    portfolio_analysis: PortfolioConfig | None = None


class TrackingConfig(_Strict):
    """MLflow tracking: a local store under the run directory by default."""

    enabled: bool = True
    uri: str | None = None
    experiment: str | None = None


class RunConfig(_Strict):
    """A whole run: data → handler → dataset → model → records."""

    name: str = "alstm"
    seed: int | None = 0
    data: DataConfig
    handler: HandlerConfig
    dataset: DatasetConfig
    model: Component
    records: RecordsConfig = Field(default_factory=RecordsConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _inside_handler(self) -> RunConfig:
        h = self.handler
        for name, (a, b) in self.dataset.segments.items():
            if a < h.start_time or b > h.end_time:
                raise ValueError(
                    f"segment {name} {a} .. {b} falls outside the handler span "
                    f"{h.start_time} .. {h.end_time}"
                )
        return self


def _line_map(text: str) -> dict[tuple[str, ...], int]:
    """YAML path → 1-based line of every mapping key and sequence item (anchors resolved)."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == "<<":
                    walk(value, path)
                    continue
                lines[(*path, str(key.value))] = key.start_mark.line + 1
                walk(value, (*path, str(key.value)))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))

    root = yaml.compose(text, Loader=Loader)
    if root is not None:
        walk(root, ())
    return lines


def set_override(tree: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=VALUE`` (VALUE parsed as YAML) to a nested dict, creating mappings."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {assignment!r}: expected KEY.PATH=VALUE")
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment!r}: {part!r} is not a mapping")
        node = child
    node[leaf] = safe_load(raw)


def parse_config(text: str, source: str = "<config>", overrides: Sequence[str] = ()) -> RunConfig:
    """Validate YAML text (plus ``--set`` overrides) into a :class:`RunConfig`."""
    try:
        tree = safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    for assignment in overrides:
        set_override(tree, assignment)
    try:
        config = RunConfig.model_validate(tree)
    except ValidationError as err:
        lines = _line_map(text)
        problems = []
        for e in err.errors():
            loc = tuple(str(p) for p in e["loc"])
            path = ".".join(loc) or "(top level)"
            line = next((lines[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in lines), None)
            where = f" (line {line})" if line else ""
            problems.append(f"  {path}{where}: {e['msg']}")
        raise ConfigError(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems)) from None
    check_components(config, source)
    return config


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read and validate a run config file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config: {err}") from None
    return parse_config(text, str(path), overrides)


def check_components(config: RunConfig, source: str = "<config>") -> None:
    """Fail, listing the registered names, when a config names an unknown component."""
    from alstm.dataset.processors import PROCESSORS
    from alstm.features.factors import FACTOR_SETS
    from alstm.model.registry import model_names

    problems = []

    def check(path: str, name: str, known: Sequence[str]) -> None:
        if name not in known:
            problems.append(f"  {path}: unknown {name!r}; registered: {', '.join(sorted(known))}")

    if config.handler.factors is not None:
        check("handler.factors", config.handler.factors.lower(), list(FACTOR_SETS))
    for group in ("infer_processors", "learn_processors"):
        for i, proc in enumerate(getattr(config.handler, group)):
            check(f"handler.{group}.{i}.name", proc.name, list(PROCESSORS))
    check("model.name", config.model.name, model_names())
    if config.records.portfolio_analysis is not None:
        check("records.portfolio_analysis.strategy.name",
              config.records.portfolio_analysis.strategy.name, ["TopkDropout"])  # fmt: skip
    if problems:
        raise ConfigError(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems))


def dump_config(config: RunConfig) -> str:
    """The resolved config as YAML (dates as ISO strings)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def to_plain(value: Any) -> Any:
    """Nested mappings/sequences as plain dicts/lists (for kwargs handed to components)."""
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value
