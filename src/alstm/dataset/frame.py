"""The handler's data: rows ``(datetime, instrument)`` × column groups ``feature`` and ``label``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

GROUPS = ("feature", "label")
CS_ALL = "__all"  # Qlib's col_set for "every column, one flat level"


@dataclass(frozen=True, eq=False)
class Frame:
    """Rows sorted by (datetime, instrument); each group is one ``[rows, cols]`` float array.

    Processors never write into the arrays of a frame they receive: they build new arrays for the
    groups they change and share the others, so a frame and its processed copy cost one copy of
    the changed group only.

    >>> df = pd.DataFrame({"A": [1.0, 2.0], "LABEL0": [0.1, 0.2]},
    ...     index=pd.MultiIndex.from_tuples([(pd.Timestamp("2020-01-02"), "X"),
    ...         (pd.Timestamp("2020-01-02"), "Y")], names=["datetime", "instrument"]))
    >>> Frame.from_frame(df).columns
    {'feature': ('A',), 'label': ('LABEL0',)}
    """

    index: pd.MultiIndex
    values: dict[str, np.ndarray]
    columns: dict[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        if list(self.index.names) != ["datetime", "instrument"]:
            raise ValueError(f"index levels must be (datetime, instrument), got {self.index.names}")
        if set(self.values) != set(GROUPS) or set(self.columns) != set(GROUPS):
            raise ValueError(f"groups must be {GROUPS}, got {list(self.values)}")
        for g in GROUPS:
            shape = (len(self.index), len(self.columns[g]))
            if self.values[g].shape != shape:
                raise ValueError(f"group {g!r}: values {self.values[g].shape} != {shape}")

    @classmethod
    def from_frame(cls, df: pd.DataFrame, label: Sequence[str] = ("LABEL0",)) -> Frame:
        """Split a flat frame (e.g. ``compute_factors``'s) into features and ``label`` columns."""
        missing = [c for c in label if c not in df.columns]
        if missing:
            raise ValueError(f"label column(s) {missing} not in the frame; columns: {list(df)}")
        if not df.index.is_monotonic_increasing:
            df = df.sort_index()
        features = [c for c in df.columns if c not in label]
        # the label is copied: a view would keep the whole input block alive after the handler
        # drops the raw features
        return cls(
            index=df.index,
            values={
                "feature": df[features].to_numpy(),
                "label": df[list(label)].to_numpy(copy=True),
            },
            columns={"feature": tuple(features), "label": tuple(label)},
        )

    def __len__(self) -> int:
        return len(self.index)

    @cached_property
    def dates(self) -> np.ndarray:
        """``datetime64[ns]`` of every row, non-decreasing."""
        return self.index.get_level_values("datetime").to_numpy("datetime64[ns]")

    @cached_property
    def day_bounds(self) -> np.ndarray:
        """int64 ``[n_days + 1]``: rows ``day_bounds[k] : day_bounds[k+1]`` share one datetime."""
        change = np.flatnonzero(self.dates[1:] != self.dates[:-1]) + 1
        return np.concatenate([[0], change, [len(self)]]).astype(np.int64)

    @cached_property
    def day_codes(self) -> np.ndarray:
        """int64 ``[rows]``: the number of each row's datetime among the frame's dates."""
        return np.repeat(np.arange(len(self.day_bounds) - 1), np.diff(self.day_bounds))

    def rows_between(self, start: object, end: object) -> slice:
        """The rows with ``start <= datetime <= end`` (None = unbounded), as a slice."""
        lo = 0 if start is None else np.searchsorted(self.dates, _ts(start), side="left")
        hi = len(self) if end is None else np.searchsorted(self.dates, _ts(end), side="right")
        return slice(int(lo), int(hi))

    def groups(self, fields_group: str | None) -> tuple[str, ...]:
        """The group names a processor's ``fields_group`` selects (None = all)."""
        if fields_group is None:
            return GROUPS
        if fields_group not in GROUPS:
            raise ValueError(f"fields_group={fields_group!r}: expected one of {GROUPS} or None")
        return (fields_group,)

    def replace(self, values: dict[str, np.ndarray], columns: dict | None = None) -> Frame:
        """A frame with some groups' arrays (and optionally names) replaced, others shared."""
        return Frame(self.index, {**self.values, **values}, {**self.columns, **(columns or {})})

    def take(self, rows: slice | np.ndarray) -> Frame:
        """The frame restricted to ``rows`` (a slice or sorted positions / boolean mask)."""
        if isinstance(rows, slice) and rows == slice(0, len(self)):
            return self
        return Frame(self.index[rows], {g: v[rows] for g, v in self.values.items()}, self.columns)

    def to_frame(self, col_set: str | Sequence[str] = CS_ALL) -> pd.DataFrame:
        """As Qlib fetches it: a group name → flat columns of that group; a list of groups →
        two-level columns ``(group, name)``; ``"__all"`` → every column, flat."""
        if isinstance(col_set, str) and col_set in GROUPS:
            return pd.DataFrame(
                self.values[col_set], index=self.index, columns=list(self.columns[col_set])
            )
        sets = list(GROUPS) if col_set == CS_ALL else list(col_set)
        unknown = [g for g in sets if g not in GROUPS]
        if unknown:
            raise ValueError(f"col_set={col_set!r}: expected {GROUPS}, a list, or {CS_ALL!r}")
        parts = [pd.DataFrame(self.values[g], columns=list(self.columns[g])) for g in sets]
        df = pd.concat(parts, axis=1, keys=sets if col_set != CS_ALL else None)
        df.index = self.index
        return df


def _ts(t: object) -> np.datetime64:
    return np.datetime64(pd.Timestamp(t), "ns")
