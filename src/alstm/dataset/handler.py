"""The data handler: raw frame R → infer processors → I → learn processors → L ("append")."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alstm.dataset.frame import CS_ALL, Frame
from alstm.dataset.processors import (
    PROCESSORS,
    Processor,
    load_processors,
    make_processor,
    save_processors,
)

DATA_KEYS = ("raw", "infer", "learn")

#: A processor in a config: its registered name, or ``{"name": ..., "kwargs": {...}}``.
ProcessorSpec = str | Mapping[str, Any]


def build_processors(
    specs: Sequence[ProcessorSpec], fit_start_time: str | None, fit_end_time: str | None
) -> list[Processor]:
    """Processors from config specs; the handler's fit span is given to every processor that
    takes ``fit_start_time``/``fit_end_time`` (overriding the spec, as Qlib does)."""
    procs = []
    for spec in specs:
        if isinstance(spec, str):
            name, kwargs = spec, {}
        else:
            name, kwargs = spec["name"], dict(spec.get("kwargs", {}))
        cls = PROCESSORS.get(name)
        if cls is not None and "fit_start_time" in inspect.signature(cls).parameters:
            if fit_start_time is None or fit_end_time is None:
                raise ValueError(f"{name} needs the handler's fit_start_time and fit_end_time")
            kwargs.update(fit_start_time=fit_start_time, fit_end_time=fit_end_time)
        procs.append(make_processor(name, **kwargs))
    return procs


class DataHandler:
    """Fits its processors in order, each on the previous one's output, and keeps R's label, I
    and L.

    ``infer`` (I) = infer processors applied to R: every row, features normalized, raw label;
    used for prediction. ``learn`` (L) = learn processors applied to I (e.g. rows without a label
    dropped, label rank-normalized); used for training. R's feature block is dropped once I is
    built unless ``keep_raw_features``; R's label is always kept (evaluation uses it).
    """

    def __init__(
        self,
        infer_processors: Sequence[Processor] = (),
        learn_processors: Sequence[Processor] = (),
        keep_raw_features: bool = False,
    ) -> None:
        self.infer_processors = infer_processors
        self.learn_processors = learn_processors
        self.keep_raw_features = keep_raw_features

    def fit_process(self, raw: Frame) -> DataHandler:
        """Fit every processor (each on the previous one's output) and build I and L."""
        return self._run(raw, fit=True)

    def process(self, raw: Frame) -> DataHandler:
        """Build I and L with already fitted (e.g. loaded) processors."""
        return self._run(raw, fit=False)

    def _run(self, raw: Frame, fit: bool) -> DataHandler:
        bad = [p.name for p in self.infer_processors if not p.for_infer]
        if bad:
            raise ValueError(f"{bad} drop rows by label: use them as learn processors only")
        self.infer_ = _apply(raw, self.infer_processors, fit)
        self.learn_ = _apply(self.infer_, self.learn_processors, fit)
        if not self.keep_raw_features:  # a fresh empty block: a view would keep R's alive
            empty = np.empty((len(raw), 0), raw.values["feature"].dtype)
            raw = raw.replace({"feature": empty}, {"feature": ()})
        self.raw_ = raw
        return self

    def frame(self, data_key: str = "infer") -> Frame:
        """The processed frame ``"infer"`` (I), ``"learn"`` (L) or ``"raw"`` (R)."""
        if data_key not in DATA_KEYS:
            raise ValueError(f"data_key={data_key!r}: expected one of {DATA_KEYS}")
        try:
            return getattr(self, f"{data_key}_")
        except AttributeError:
            raise RuntimeError("the handler has no data: call fit_process(raw) first") from None

    def fetch(
        self,
        start: object = None,
        end: object = None,
        col_set: str | Sequence[str] = CS_ALL,
        data_key: str = "infer",
    ) -> pd.DataFrame:
        """Rows with ``start <= datetime <= end`` of one data key as a pandas frame (columns as
        :meth:`Frame.to_frame` lays them out)."""
        frame = self.frame(data_key)
        if data_key == "raw" and not frame.columns["feature"] and col_set != "label":
            raise ValueError("raw features were not kept: build the handler with keep_raw_features")
        return frame.take(frame.rows_between(start, end)).to_frame(col_set)

    @property
    def dates(self) -> np.ndarray:
        """The sorted unique datetimes of the data (``datetime64[ns]``)."""
        frame = self.frame("infer")
        return frame.dates[frame.day_bounds[:-1]]

    def save(self, directory: Path) -> None:
        """Save the fitted processors (``infer/`` and ``learn/`` as JSON + NPZ; no data)."""
        save_processors(directory / "infer", self.infer_processors)
        save_processors(directory / "learn", self.learn_processors)

    @classmethod
    def load(cls, directory: Path, keep_raw_features: bool = False) -> DataHandler:
        """A handler with the fitted processors saved by :meth:`save` (call ``process(raw)``)."""
        return cls(
            load_processors(directory / "infer"),
            load_processors(directory / "learn"),
            keep_raw_features,
        )


def _apply(frame: Frame, processors: Sequence[Processor], fit: bool) -> Frame:
    """Run ``processors`` in order, fitting each on its input first when ``fit``."""
    for proc in processors:
        if fit:
            proc.fit(frame)
        frame = proc.transform(frame)
    return frame
