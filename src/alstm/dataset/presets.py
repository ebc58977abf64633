"""The two ALSTM benchmark datasets (Qlib's workflow_config_alstm_Alpha158/Alpha360.yaml)."""

from __future__ import annotations

from pathlib import Path

from alstm.data.provider import QlibDataDir
from alstm.dataset.dataset import DatasetH, TSDatasetH
from alstm.dataset.frame import Frame
from alstm.dataset.handler import DataHandler, ProcessorSpec, build_processors
from alstm.features.factors import LABEL, factor_set, load_factors

#: The 20 Alpha158 columns of the ALSTM/GRU/LSTM YAMLs, in YAML order (FilterCol keeps
#: Alpha158's own order: KLEN, KLOW, ROC60, STD5, … WVMA60).
ALPHA158_ALSTM_COLUMNS = (
    "RESI5", "WVMA5", "RSQR5", "KLEN", "RSQR10", "CORR5", "CORD5", "CORR10", "ROC60", "RESI10",
    "VSTD5", "RSQR60", "CORR60", "WVMA60", "STD5", "RSQR20", "CORD60", "CORD10", "CORR20", "KLOW",
)  # fmt: skip
MARKET = "csi300"
SPAN = ("2008-01-01", "2020-08-01")
FIT_SPAN = ("2008-01-01", "2014-12-31")
SEGMENTS = {
    "train": ("2008-01-01", "2014-12-31"),
    "valid": ("2015-01-01", "2016-12-31"),
    "test": ("2017-01-01", "2020-08-01"),
}
STEP_LEN = 20  # Alpha158 TSDatasetH
D_FEAT_ALPHA360 = 6  # close, open, high, low, vwap, volume × 60 lags
LEARN: list[ProcessorSpec] = [
    "DropnaLabel",
    {"name": "CSRankNorm", "kwargs": {"fields_group": "label"}},
]


def benchmark_processors(name: str) -> tuple[list[ProcessorSpec], list[ProcessorSpec]]:
    """(infer, learn) processor specs of the ``"alpha158"`` or ``"alpha360"`` benchmark."""
    infer: list[ProcessorSpec] = [
        {"name": "RobustZScoreNorm", "kwargs": {"fields_group": "feature", "clip_outlier": True}},
        {"name": "Fillna", "kwargs": {"fields_group": "feature"}},
    ]
    if name == "alpha158":
        cols = {"fields_group": "feature", "col_list": list(ALPHA158_ALSTM_COLUMNS)}
        infer.insert(0, {"name": "FilterCol", "kwargs": cols})
    elif name != "alpha360":
        raise ValueError(f"unknown benchmark {name!r}; known: ['alpha158', 'alpha360']")
    return infer, list(LEARN)


def benchmark_handler(raw: Frame, name: str, fit_span: tuple[str, str] = FIT_SPAN) -> DataHandler:
    """A handler fitted on ``raw`` (features + LABEL0) with the benchmark's processors."""
    infer, learn = benchmark_processors(name)
    return DataHandler(
        build_processors(infer, *fit_span), build_processors(learn, *fit_span)
    ).fit_process(raw)


def benchmark_dataset(
    data: QlibDataDir,
    name: str,
    *,
    market: str = MARKET,
    span: tuple[str, str] = SPAN,
    fit_span: tuple[str, str] = FIT_SPAN,
    segments: dict[str, tuple[str, str]] = SEGMENTS,
    cache_dir: Path | None = None,
) -> DatasetH:
    """The benchmark's dataset: Alpha158 → TSDatasetH(step_len 20) over the 20 filtered
    columns; Alpha360 → DatasetH served as 60 steps × 6 features."""
    benchmark_processors(name)  # fail on an unknown name before computing factors
    exprs = {**factor_set(name), **LABEL}
    raw = Frame.from_frame(load_factors(data, exprs, *span, market, cache_dir=cache_dir))
    handler = benchmark_handler(raw, name, fit_span)
    if name == "alpha158":
        return TSDatasetH(handler, segments, step_len=STEP_LEN)
    return DatasetH(handler, segments, d_feat=D_FEAT_ALPHA360)
