"""What a model consumes: a set of samples gathered by position into ``[B, T, F]`` batches.

Two layouts share one interface (:class:`SampleSet`):

- :class:`WindowSamples` (TSDatasetH): one dense store ``[instrument, time, F + 1]`` (features,
  then the label) over the (date × instrument) grid of the fetched frame, plus a bool grid of
  which cells exist; a sample is a (date, instrument) cell and its batch rows are the last
  ``step_len`` cells of its instrument, holes filled as Qlib's ``TSDataSampler`` fills them.
  Batches are gathered by a compiled kernel straight from the store: no window is stored.
- :class:`FlatSamples` (DatasetH): one row per sample whose ``F · T`` columns are F fields × T
  lags, oldest lag first (Alpha360), served as ``[T, F]`` sequences.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numba as nb
import numpy as np
import pandas as pd
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from alstm.dataset.frame import Frame

FILLNA_TYPES = ("none", "ffill", "ffill+bfill")


class SampleSet(ABC):
    """Samples in a fixed order: ``index[i]`` is the (datetime, instrument) of sample ``i``."""

    step_len: int
    n_features: int
    index: pd.MultiIndex

    @property
    def d_feat(self) -> int:
        """The number of features per step (the model's ``d_feat``)."""
        return self.n_features

    def __len__(self) -> int:
        return len(self.index)

    @abstractmethod
    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features float32 ``[B, step_len, n_features]`` and label float32 ``[B]`` (NaN allowed)
        of the samples at positions ``rows`` (int64 ``[B]``)."""

    def _check_rows(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 1:
            raise ValueError(f"rows must be 1-D sample positions, got shape {rows.shape}")
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(
                f"sample positions must be in [0, {len(self)}), got {rows.min()} .. {rows.max()}"
            )
        return rows


class WindowSamples(SampleSet):
    """Time-series windows over each instrument's own rows (Qlib's TSDataSampler).

    ``store``: float32 ``[n_inst, n_dates, n_features + 1]`` (label last; NaN where no row);
    ``exists``: bool ``[n_inst, n_dates]``, True where the fetched frame has the row;
    ``sample_inst``/``sample_date``: int64 ``[n_samples]`` cell of each sample.
    The window of sample (d, j) is cells ``d − step_len + 1 … d`` of instrument j; cells before
    the first date or without a row are missing and handled by ``fillna_type``: "none" → NaN,
    "ffill" → the last present cell before it in the window, "ffill+bfill" → then the first
    present cell of the window for leading gaps. The instrument-major layout keeps a window
    contiguous in memory.
    """

    def __init__(
        self,
        store: np.ndarray,
        exists: np.ndarray,
        sample_inst: np.ndarray,
        sample_date: np.ndarray,
        index: pd.MultiIndex,
        step_len: int,
        fillna_type: str = "ffill+bfill",
    ) -> None:
        if step_len < 1:
            raise ValueError(f"step_len={step_len}: must be an integer >= 1")
        if fillna_type not in FILLNA_TYPES:
            raise ValueError(f"fillna_type={fillna_type!r}: expected one of {FILLNA_TYPES}")
        self.store = store
        self.exists = exists
        self.sample_inst = sample_inst
        self.sample_date = sample_date
        self.index = index
        self.step_len = step_len
        self.fillna_type = fillna_type
        self.n_features = store.shape[2] - 1

    @classmethod
    def from_frame(
        cls, frame: Frame, start: object, end: object, step_len: int, fillna_type: str
    ) -> WindowSamples:
        """Windows for the rows of ``frame`` dated ``start .. end``, in instrument-major order;
        the grid is the (date × instrument) grid of the whole ``frame`` (fetch it with the
        history the first windows need). Features then the first label column."""
        date_code = frame.day_codes
        dates = frame.dates[frame.day_bounds[:-1]]
        inst_code, insts = pd.factorize(frame.index.get_level_values("instrument"), sort=True)
        n_feat = len(frame.columns["feature"])
        store = np.full((len(insts), len(dates), n_feat + 1), np.nan, np.float32)
        store[inst_code, date_code, :n_feat] = frame.values["feature"]
        store[inst_code, date_code, n_feat] = frame.values["label"][:, 0]
        exists = np.zeros((len(insts), len(dates)), bool)
        exists[inst_code, date_code] = True
        rows = frame.rows_between(start, end)
        order = np.lexsort((date_code[rows], inst_code[rows]))  # instrument, then date
        s_inst, s_date = inst_code[rows][order], date_code[rows][order]
        index = pd.MultiIndex.from_arrays(
            [pd.DatetimeIndex(dates[s_date]), insts[s_inst]], names=["datetime", "instrument"]
        )
        return cls(store, exists, s_inst, s_date, index, step_len, fillna_type)

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features float32 ``[B, step_len, n_features]`` and the label of each sample's own row,
        float32 ``[B]``, for sample positions ``rows``."""
        rows = self._check_rows(rows)
        x = np.empty((len(rows), self.step_len, self.n_features), np.float32)
        y = np.empty(len(rows), np.float32)
        fill = FILLNA_TYPES.index(self.fillna_type)
        _gather_windows(
            self.store, self.exists, self.sample_inst[rows], self.sample_date[rows], fill, x, y
        )
        return x, y


#: How many windows ahead ``_gather_windows`` prefetches. Why: the windows of a shuffled batch
#: lie at random places in a store too large for the caches, and copying them one after another
#: waited on memory at every window; prefetching 4 ahead took a batch of 800 Alpha158 windows
#: (20 × 20) from 0.30 to 0.12 ms.
_AHEAD = 4


@intrinsic
def _prefetch(typingctx, address):  # type: ignore[no-untyped-def]  # pragma: no cover - numba
    """A hint to bring the cache line at ``address`` (int64) into the caches for reading (LLVM's
    ``prefetch``: never faults, whatever the address)."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        byte_ptr, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read, keep in all cache levels, data cache
        builder.call(fn, [builder.inttoptr(args[0], byte_ptr), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(types.int64), codegen


@nb.njit(cache=True, nogil=True)
def _gather_windows(store, exists, inst, date, fill, out_x, out_y):  # pragma: no cover - numba
    """``out_x[b, k] = store[inst[b], src, :-1]`` where src is the filled cell of window step k
    (fill 0 none / 1 ffill / 2 ffill+bfill; NaN when nothing fills it); ``out_y[b]`` the label."""
    n_feat = out_x.shape[2]
    steps = out_x.shape[1]
    base, inst_stride, date_stride = store.ctypes.data, store.strides[0], store.strides[1]
    for b in range(len(inst)):
        if b + _AHEAD < len(inst):  # ask for a later window's memory while copying this one
            j, d = inst[b + _AHEAD], date[b + _AHEAD]
            start = base + j * inst_stride + max(d - steps + 1, 0) * date_stride
            for address in range(start, base + j * inst_stride + (d + 1) * date_stride, 64):
                _prefetch(address)
        j, d = inst[b], date[b]
        lo = d - steps + 1
        first = -1  # first present cell of the window, for the back-fill
        for u in range(max(lo, 0), d + 1):
            if exists[j, u]:
                first = u
                break
        last = -1  # last present cell so far, for the forward fill
        for k in range(steps):
            u = lo + k
            here = u >= 0 and exists[j, u]
            if here:
                last = u
            src = u if here else (last if fill >= 1 else -1)
            if src < 0 and fill == 2:
                src = first
            # explicit loops: about twice as fast as slice assignment in numba
            if src < 0:
                for f in range(n_feat):
                    out_x[b, k, f] = np.nan
            else:
                for f in range(n_feat):
                    out_x[b, k, f] = store[j, src, f]
        out_y[b] = store[j, d, n_feat]


class FlatSamples(SampleSet):
    """One stored row per sample: ``features`` float32 ``[n, n_features · step_len]`` laid out as
    ``n_features`` blocks of ``step_len`` lags (oldest first), ``label`` float32 ``[n]``; a
    sample is served as ``[step_len, n_features]`` (step 0 = the oldest lag)."""

    def __init__(
        self, features: np.ndarray, label: np.ndarray, index: pd.MultiIndex, n_features: int
    ) -> None:
        if n_features < 1 or features.shape[1] % n_features:
            raise ValueError(
                f"d_feat={n_features}: must divide the {features.shape[1]} feature columns"
            )
        self.features = features
        self.label = label
        self.index = index
        self.n_features = n_features
        self.step_len = features.shape[1] // n_features

    @classmethod
    def from_frame(cls, frame: Frame, n_features: int) -> FlatSamples:
        """Every row of ``frame`` in its stored order; features and the first label column."""
        return cls(
            frame.values["feature"].astype(np.float32, copy=False),
            frame.values["label"][:, 0].astype(np.float32),
            frame.index,
            n_features,
        )

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features float32 ``[B, step_len, n_features]`` and label float32 ``[B]``."""
        rows = self._check_rows(rows)
        x = self.features[rows].reshape(len(rows), self.n_features, self.step_len)
        return np.ascontiguousarray(x.transpose(0, 2, 1)), self.label[rows]
