"""What the model needs from a dataset: samples gathered by position into ``[B, T, F]`` arrays."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd


class SampleSet(Protocol):
    """The samples of one segment, in a fixed order."""

    step_len: int
    n_features: int
    index: pd.MultiIndex  # (datetime, instrument) of each sample, in sample order

    def __len__(self) -> int: ...

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features ``float32 [B, step_len, n_features]`` and label ``float32 [B]`` (NaN allowed)
        of the samples at positions ``rows`` (``int64 [B]``)."""
        ...


class SampleSource(Protocol):
    """A dataset: ``"train"``/``"valid"`` give learning samples, ``"test"`` inference samples."""

    def samples(self, segment: str) -> SampleSet: ...
