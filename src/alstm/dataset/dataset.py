"""Datasets: a processed handler cut into date segments, served as frames or sample sets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from alstm.dataset.frame import CS_ALL, Frame
from alstm.dataset.handler import DataHandler
from alstm.dataset.samples import FILLNA_TYPES, FlatSamples, SampleSet, WindowSamples

#: Segments trained on use the learn data L; every other segment the inference data I.
LEARN_SEGMENTS = ("train", "valid")


class DatasetH:
    """Named date segments (inclusive ``(start, end)``) over a fitted :class:`DataHandler`.

    ``d_feat`` splits each row's feature columns into ``d_feat`` fields × ``step_len`` lags
    (oldest lag first, as Alpha360 lays them out) for :meth:`samples`; None serves each row as
    one step of all its features.
    """

    def __init__(
        self,
        handler: DataHandler,
        segments: Mapping[str, tuple[object, object]],
        d_feat: int | None = None,
    ) -> None:
        self.handler = handler
        self.segments = {name: _check_segment(handler, name, seg) for name, seg in segments.items()}
        n_cols = len(handler.frame("infer").columns["feature"])
        self.d_feat = n_cols if d_feat is None else d_feat
        if self.d_feat < 1 or n_cols % self.d_feat:
            raise ValueError(f"d_feat={d_feat}: must be >= 1 and divide the {n_cols} features")

    @property
    def n_features(self) -> int:
        """Features per step of a sample (= ``d_feat``)."""
        return self.d_feat

    def prepare(
        self,
        segments: str | Sequence[str],
        col_set: str | Sequence[str] = CS_ALL,
        data_key: str = "infer",
    ) -> pd.DataFrame | list[pd.DataFrame]:
        """The rows of a segment (or a list of them) as pandas frames, like Qlib's ``prepare``."""
        if isinstance(segments, str):
            start, end = self._segment(segments)
            return self.handler.fetch(start, end, col_set, data_key)
        return [self.prepare(s, col_set, data_key) for s in segments]

    def samples(self, segment: str, data_key: str | None = None) -> SampleSet:
        """The segment's samples, one per row in stored (datetime, instrument) order, each row
        served as ``[step_len, d_feat]``; from L for train/valid, I otherwise."""
        frame = self._segment_frame(segment, data_key, history=0)
        return FlatSamples.from_frame(frame, self.d_feat)

    def raw_label(self, segment: str) -> pd.Series:
        """The raw (unprocessed) label of the segment's rows, indexed (datetime, instrument)."""
        start, end = self._segment(segment)
        raw = self.handler.frame("raw")
        part = raw.take(raw.rows_between(start, end))
        return pd.Series(part.values["label"][:, 0], index=part.index, name=raw.columns["label"][0])

    def _segment(self, name: str) -> tuple[object, object]:
        try:
            return self.segments[name]
        except KeyError:
            raise ValueError(f"unknown segment {name!r}; segments: {list(self.segments)}") from None

    def _segment_frame(self, segment: str, data_key: str | None, history: int) -> Frame:
        """The segment's rows of its data key, starting ``history`` data dates earlier."""
        start, end = self._segment(segment)
        key = data_key or ("learn" if segment in LEARN_SEGMENTS else "infer")
        frame = self.handler.frame(key)
        cal = self.handler.dates
        at = int(np.searchsorted(cal, np.datetime64(pd.Timestamp(start), "ns")))
        first = max(at - history, 0)
        return frame.take(frame.rows_between(cal[first], end))


class TSDatasetH(DatasetH):
    """Segments served as time-series windows of ``step_len`` rows per instrument (Qlib's
    TSDatasetH + TSDataSampler); :meth:`prepare` still returns the segment's rows as frames."""

    def __init__(
        self,
        handler: DataHandler,
        segments: Mapping[str, tuple[object, object]],
        step_len: int = 30,
        fillna_type: str = "ffill+bfill",
    ) -> None:
        if not isinstance(step_len, (int, np.integer)) or step_len < 1:
            raise ValueError(f"step_len={step_len!r}: must be an integer >= 1")
        if fillna_type not in FILLNA_TYPES:
            raise ValueError(f"fillna_type={fillna_type!r}: expected one of {FILLNA_TYPES}")
        super().__init__(handler, segments)
        self.step_len = step_len
        self.fillna_type = fillna_type

    def samples(self, segment: str, data_key: str | None = None) -> SampleSet:
        """The segment's windows ``[step_len, d_feat]`` in Qlib's order (instrument, then date),
        over the data key's rows from ``step_len`` data dates before the segment start (L for
        train/valid: rows dropped by DropnaLabel are holes; I otherwise)."""
        frame = self._segment_frame(segment, data_key, history=self.step_len)
        start, end = self.segments[segment]
        return WindowSamples.from_frame(frame, start, end, self.step_len, self.fillna_type)


def _check_segment(handler: DataHandler, name: str, seg: tuple[object, object]) -> tuple:
    """``seg`` as Timestamps; an error names the segment and the data's dates when it has no
    rows."""
    try:
        start, end = (pd.Timestamp(t) for t in seg)
    except (TypeError, ValueError):
        raise ValueError(f"segment {name!r}={seg!r}: expected (start, end) dates") from None
    dates = handler.dates
    if start > end:
        raise ValueError(f"segment {name!r}: start {start.date()} is after end {end.date()}")
    lo = np.searchsorted(dates, np.datetime64(start, "ns"), side="left")
    hi = np.searchsorted(dates, np.datetime64(end, "ns"), side="right")
    if hi == lo:
        span = (
            f"{pd.Timestamp(dates[0]).date()} .. {pd.Timestamp(dates[-1]).date()}"
            if len(dates)
            else "no dates at all"
        )
        raise ValueError(
            f"segment {name!r}={start.date()} .. {end.date()} has no data rows; "
            f"the data spans {span} (choose dates within it)"
        )
    return start, end
