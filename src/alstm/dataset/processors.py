"""Qlib's data processors, registered by name; each fits on its fit span and transforms frames.

Every parameter is an explicit ``__init__`` keyword stored unchanged; ``fit`` learns the state
(attributes ending in ``_``) and ``transform`` returns a new :class:`Frame`, never writing into
the arrays it was given. Column-wise maths is vectorized NumPy over a group's ``[rows, cols]``
block in the block's dtype (float32 features stay float32, as in Qlib); ``fields_group=None``
processes both groups as one block in their common dtype.

>>> proc = make_processor("Fillna", fields_group="feature")
>>> proc
Fillna(fields_group='feature', fill_value=0)
"""

from __future__ import annotations

import inspect
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd

from alstm.dataset.frame import Frame

EPS = 1e-12  # Qlib's constant.EPS, added to the MAD before scaling
MAD_TO_STD = 1.4826  # MAD of a normal distribution × this = its std
RANK_TO_STD = 3.46  # ≈ 1 / std of a uniform rank on [0, 1] (Qlib's constant)

PROCESSORS: dict[str, type[Processor]] = {}
P = TypeVar("P", bound="type[Processor]")


def register_processor(name: str) -> Callable[[P], P]:
    """Class decorator: make a processor available to configs under ``name`` (no shadowing)."""

    def deco(cls: P) -> P:
        if name in PROCESSORS:
            raise ValueError(f"processor {name!r} is already registered ({PROCESSORS[name]})")
        cls.name = name
        PROCESSORS[name] = cls
        return cls

    return deco


def make_processor(name: str, **kwargs: Any) -> Processor:
    """The registered processor ``name`` built with ``kwargs``; unknown names list known ones."""
    try:
        cls = PROCESSORS[name]
    except KeyError:
        raise ValueError(f"unknown processor {name!r}; known: {sorted(PROCESSORS)}") from None
    return cls(**kwargs)


class Processor:
    """One step of a handler: ``fit(frame)`` then ``transform(frame) -> frame``."""

    name: ClassVar[str]
    #: False for processors that drop rows by label: usable for learn data only.
    for_infer: ClassVar[bool] = True
    #: Names of the fitted attributes (stored as ``<name>_``), saved by ``state_dict``.
    state_keys: ClassVar[tuple[str, ...]] = ()

    def fit(self, frame: Frame) -> Processor:
        """Learn the state from ``frame`` (stateless processors learn nothing)."""
        return self

    def transform(self, frame: Frame) -> Frame:
        """The processed frame."""
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """The ``__init__`` keywords and their stored values."""
        params = list(inspect.signature(type(self)).parameters.values())
        return {p.name: getattr(self, p.name) for p in params if p.kind == p.POSITIONAL_OR_KEYWORD}

    def state_dict(self) -> dict[str, np.ndarray]:
        """The fitted state as plain arrays (empty for stateless processors)."""
        missing = [k for k in self.state_keys if not hasattr(self, f"{k}_")]
        if missing:
            raise RuntimeError(f"{self!r} is not fitted: call fit() first")
        return {k: np.asarray(getattr(self, f"{k}_")) for k in self.state_keys}

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> Processor:
        """Restore the fitted state written by :meth:`state_dict`."""
        if set(state) != set(self.state_keys):
            raise ValueError(f"{self.name}: state keys {sorted(state)} != {list(self.state_keys)}")
        for k, v in state.items():
            setattr(self, f"{k}_", np.asarray(v))
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{self.name}({args})"

    def _fitted(self, key: str) -> np.ndarray:
        try:
            return getattr(self, f"{key}_")
        except AttributeError:
            raise RuntimeError(f"{self!r} is not fitted: call fit() first") from None


def save_processors(directory: Path, processors: Sequence[Processor]) -> None:
    """Write ``processors.json`` (names, parameters) and ``processors.npz`` (fitted state)."""
    directory.mkdir(parents=True, exist_ok=True)
    specs = [{"name": p.name, "kwargs": p.get_params()} for p in processors]
    (directory / "processors.json").write_text(json.dumps(specs, indent=1, default=str))
    arrays = {f"{i}/{k}": v for i, p in enumerate(processors) for k, v in p.state_dict().items()}
    np.savez(directory / "processors.npz", **arrays)


def load_processors(directory: Path) -> list[Processor]:
    """The fitted processors saved by :func:`save_processors`."""
    specs = json.loads((directory / "processors.json").read_text())
    with np.load(directory / "processors.npz", allow_pickle=False) as z:
        arrays = dict(z)
    procs = []
    for i, spec in enumerate(specs):
        proc = make_processor(spec["name"], **spec["kwargs"])
        prefix = f"{i}/"
        state = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        procs.append(proc.load_state_dict(state))
    return procs


# --- helpers ---------------------------------------------------------------------------------


def _fit_rows(proc: Processor, frame: Frame) -> Frame:
    """The rows of ``frame`` in the processor's fit span; an error names the span when empty."""
    start, end = proc.fit_start_time, proc.fit_end_time  # type: ignore[attr-defined]
    part = frame.take(frame.rows_between(start, end))
    if len(part) == 0:
        span = (
            f"{pd.Timestamp(frame.dates[0]).date()} .. {pd.Timestamp(frame.dates[-1]).date()}"
            if len(frame)
            else "no rows at all"
        )
        raise ValueError(
            f"{proc.name}: fit_start_time={start!r} .. fit_end_time={end!r} selects no rows; "
            f"the data spans {span}"
        )
    return part


def _block(frame: Frame, fields_group: str | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """The selected groups' columns side by side ``[rows, cols]`` and the groups in order."""
    groups = frame.groups(fields_group)
    if len(groups) == 1:
        return frame.values[groups[0]], groups
    return np.concatenate([frame.values[g] for g in groups], axis=1), groups


def _put_block(frame: Frame, groups: tuple[str, ...], block: np.ndarray) -> Frame:
    """``frame`` with ``block`` (from :func:`_block`) split back into its groups."""
    sizes = np.cumsum([len(frame.columns[g]) for g in groups])[:-1]
    return frame.replace(dict(zip(groups, np.split(block, sizes, axis=1), strict=True)))


# --- row filters -----------------------------------------------------------------------------


@register_processor("DropnaProcessor")
class DropnaProcessor(Processor):
    """Drop the rows with a NaN in any column of ``fields_group`` (None = every column)."""

    def __init__(self, fields_group: str | None = None) -> None:
        self.fields_group = fields_group

    def transform(self, frame: Frame) -> Frame:
        block, _ = _block(frame, self.fields_group)
        return frame.take(np.flatnonzero(~np.isnan(block).any(axis=1)))


@register_processor("DropnaLabel")
class DropnaLabel(DropnaProcessor):
    """Drop the rows whose label is NaN (learn data only: inference keeps every row)."""

    for_infer = False

    def __init__(self, fields_group: str | None = "label") -> None:
        super().__init__(fields_group=fields_group)


@register_processor("DropnaFeature")
class DropnaFeature(DropnaProcessor):
    """Drop the rows with a NaN feature."""

    def __init__(self, fields_group: str | None = "feature") -> None:
        super().__init__(fields_group=fields_group)


# --- column filters --------------------------------------------------------------------------


@register_processor("FilterCol")
class FilterCol(Processor):
    """Keep the columns of ``fields_group`` named in ``col_list``, in their original order (not
    the list's); other groups are untouched."""

    def __init__(self, fields_group: str = "feature", col_list: Sequence[str] = ()) -> None:
        self.fields_group = fields_group
        self.col_list = col_list

    def transform(self, frame: Frame) -> Frame:
        if self.fields_group is None:
            raise ValueError("FilterCol: fields_group must name one group ('feature' or 'label')")
        names = frame.columns[frame.groups(self.fields_group)[0]]
        missing = [c for c in self.col_list if c not in names]
        if missing:
            raise ValueError(
                f"FilterCol: col_list names {missing} that are not {self.fields_group} columns; "
                f"available: {list(names)}"
            )
        keep = [i for i, c in enumerate(names) if c in set(self.col_list)]
        return frame.replace(
            {self.fields_group: frame.values[self.fields_group][:, keep]},
            {self.fields_group: tuple(names[i] for i in keep)},
        )


# --- elementwise -----------------------------------------------------------------------------


@register_processor("Fillna")
class Fillna(Processor):
    """NaN → ``fill_value`` in ``fields_group`` (None = every column)."""

    def __init__(self, fields_group: str | None = None, fill_value: float = 0) -> None:
        self.fields_group = fields_group
        self.fill_value = fill_value

    def transform(self, frame: Frame) -> Frame:
        out = {}
        for g in frame.groups(self.fields_group):
            x = frame.values[g]
            out[g] = np.where(np.isnan(x), x.dtype.type(self.fill_value), x)
        return frame.replace(out)


@register_processor("TanhProcess")
class TanhProcess(Processor):
    """``tanh(x − 1)`` on every column whose name does not contain "LABEL" (Qlib picks the
    columns by name, whatever their group)."""

    def transform(self, frame: Frame) -> Frame:
        out = {}
        for g in frame.groups(None):
            cols = [i for i, c in enumerate(frame.columns[g]) if "LABEL" not in c]
            if cols:
                x = frame.values[g].copy()
                x[:, cols] = np.tanh(x[:, cols] - 1)
                out[g] = x
        return frame.replace(out)


@register_processor("ProcessInf")
class ProcessInf(Processor):
    """±inf → the mean of that column's other (finite) values on the same day, every column.

    A day whose column has no finite value gets NaN. The mean is taken in float64 and cast to
    the column's dtype (Qlib sums float32 in float32: the two can differ in the last bit).
    """

    def transform(self, frame: Frame) -> Frame:
        out = {}
        days = frame.day_codes
        for g in frame.groups(None):
            x = frame.values[g]
            inf = np.isinf(x)
            if not inf.any():
                continue
            finite = pd.DataFrame(np.where(inf, np.nan, x).astype(np.float64))
            means = finite.groupby(days).mean().to_numpy()[days].astype(x.dtype)
            out[g] = np.where(inf, means, x)
        return frame.replace(out)


# --- global normalizers (fitted on fit_start_time .. fit_end_time) ---------------------------


@register_processor("MinMaxNorm")
class MinMaxNorm(Processor):
    """``(x − min) / (max − min)`` per column with min/max over the fit span; a constant column
    is left as it is."""

    state_keys = ("min", "max")

    def __init__(self, fit_start_time: str, fit_end_time: str, fields_group: str | None = None):
        self.fit_start_time = fit_start_time
        self.fit_end_time = fit_end_time
        self.fields_group = fields_group

    def fit(self, frame: Frame) -> MinMaxNorm:
        x, _ = _block(_fit_rows(self, frame), self.fields_group)
        lo, hi = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
        same = lo == hi  # (x - 0) / (1 - 0) leaves these columns unchanged
        self.min_, self.max_ = np.where(same, 0, lo), np.where(same, 1, hi)
        return self

    def transform(self, frame: Frame) -> Frame:
        x, groups = _block(frame, self.fields_group)
        lo, hi = self._fitted("min"), self._fitted("max")
        return _put_block(frame, groups, (x - lo) / (hi - lo))


@register_processor("ZScoreNorm")
class ZScoreNorm(Processor):
    """``(x − mean) / std`` per column (population std, NaN skipped) over the fit span; a
    constant column is left as it is."""

    state_keys = ("mean", "std")

    def __init__(self, fit_start_time: str, fit_end_time: str, fields_group: str | None = None):
        self.fit_start_time = fit_start_time
        self.fit_end_time = fit_end_time
        self.fields_group = fields_group

    def fit(self, frame: Frame) -> ZScoreNorm:
        x, _ = _block(_fit_rows(self, frame), self.fields_group)
        mean, std = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
        same = std == 0  # (x - 0) / 1 leaves these columns unchanged
        self.mean_, self.std_ = np.where(same, 0, mean), np.where(same, 1, std)
        return self

    def transform(self, frame: Frame) -> Frame:
        x, groups = _block(frame, self.fields_group)
        return _put_block(frame, groups, (x - self._fitted("mean")) / self._fitted("std"))


@register_processor("RobustZScoreNorm")
class RobustZScoreNorm(Processor):
    """``(x − median) / ((MAD + 1e-12) · 1.4826)`` per column over the fit span (all instruments
    pooled, NaN skipped), then optionally clipped to [−3, 3] (±inf → ±3, NaN stays)."""

    state_keys = ("median", "scale")

    def __init__(
        self,
        fit_start_time: str,
        fit_end_time: str,
        fields_group: str | None = None,
        clip_outlier: bool = True,
    ) -> None:
        self.fit_start_time = fit_start_time
        self.fit_end_time = fit_end_time
        self.fields_group = fields_group
        self.clip_outlier = clip_outlier

    def fit(self, frame: Frame) -> RobustZScoreNorm:
        x, _ = _block(_fit_rows(self, frame), self.fields_group)
        cols = range(x.shape[1])
        with warnings.catch_warnings():  # an all-NaN column gives NaN, as in Qlib
            warnings.simplefilter("ignore", RuntimeWarning)
            # column by column: the values of np.nanmedian(x, axis=0) without its big copies
            median = np.array([np.nanmedian(x[:, c]) for c in cols], dtype=x.dtype)
            mad = [np.nanmedian(np.abs(x[:, c] - median[c])) for c in cols]
        scale = np.array(mad, dtype=x.dtype)
        scale += EPS  # in the block's dtype, then scaled, in this order, as Qlib does
        scale *= MAD_TO_STD
        self.median_, self.scale_ = median, scale
        return self

    def transform(self, frame: Frame) -> Frame:
        x, groups = _block(frame, self.fields_group)
        z = (x - self._fitted("median")) / self._fitted("scale")
        if self.clip_outlier:
            np.clip(z, -3, 3, out=z)
        return _put_block(frame, groups, z)


# --- cross-sectional (per datetime) ----------------------------------------------------------


@register_processor("CSZScoreNorm")
class CSZScoreNorm(Processor):
    """Per datetime and column: ``method="zscore"`` → ``(x − mean) / std`` (sample std);
    ``"robust"`` → ``(x − median) / MAD / 1.4826`` clipped to [−3, 3] (no ε). Computed in float64
    and cast back to the column's dtype."""

    METHODS = ("zscore", "robust")

    def __init__(self, fields_group: str | None = None, method: str = "zscore") -> None:
        self.fields_group = fields_group
        self.method = method

    def transform(self, frame: Frame) -> Frame:
        if self.method not in self.METHODS:
            raise ValueError(f"CSZScoreNorm: method={self.method!r}; expected {self.METHODS}")
        days = frame.day_codes
        out = {}
        for g in frame.groups(self.fields_group):
            x = frame.values[g]
            df = pd.DataFrame(x.astype(np.float64))
            by_day = df.groupby(days)
            if self.method == "zscore":
                z = (df - by_day.transform("mean")) / by_day.transform("std")
            else:
                centred = df - by_day.transform("median")
                mad = centred.abs().groupby(days).transform("median")
                z = (centred / mad / MAD_TO_STD).clip(-3, 3)
            out[g] = z.to_numpy(x.dtype)
        return frame.replace(out)


@register_processor("CSRankNorm")
class CSRankNorm(Processor):
    """Per datetime and column: ``(rank(pct=True) − 0.5) · 3.46`` with average ranks for ties,
    NaN kept and excluded from the count; the result is float64 (as Qlib's)."""

    def __init__(self, fields_group: str | None = None) -> None:
        self.fields_group = fields_group

    def transform(self, frame: Frame) -> Frame:
        days = frame.day_codes
        out = {}
        for g in frame.groups(self.fields_group):
            pct = pd.DataFrame(frame.values[g]).groupby(days).rank(pct=True).to_numpy(np.float64)
            out[g] = (pct - 0.5) * RANK_TO_STD
        return frame.replace(out)
