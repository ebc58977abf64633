"""A tiny in-memory dataset implementing the model's sample protocol."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

SEGMENTS = {"train": (0, 30), "valid": (30, 40), "test": (40, 50)}  # date positions [lo, hi)


class FakeSamples:
    """Samples held as one ``[N, T, F]`` array, served by position."""

    def __init__(self, x: np.ndarray, y: np.ndarray, index: pd.MultiIndex) -> None:
        self.x, self.y, self.index = x, y, index
        self.step_len, self.n_features = x.shape[1], x.shape[2]

    def __len__(self) -> int:
        return len(self.x)

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.x[rows], self.y[rows]


class FakeDataset:
    """Named segments of FakeSamples; ``segments`` holds their dates, as DatasetH does."""

    def __init__(self, sets: dict[str, FakeSamples]) -> None:
        self.sets = sets
        self.segments = {
            name: (s.index.get_level_values(0).min(), s.index.get_level_values(0).max())
            for name, s in sets.items()
            if len(s)
        }

    def samples(self, segment: str) -> FakeSamples:
        return self.sets[segment]


def make_dataset(
    seed: int = 0, n_inst: int = 24, steps: int = 5, n_feat: int = 3, noise: float = 0.5
) -> FakeDataset:
    """50 dates × ``n_inst`` instruments of random features; the label is a fixed linear function
    of the last step's features plus noise (learnable, IC ≈ 0.9 at the optimum)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=50)
    insts = [f"SH{600000 + i}" for i in range(n_inst)]
    beta = np.linspace(-1, 1, n_feat)
    sets = {}
    for name, (lo, hi) in SEGMENTS.items():
        n = (hi - lo) * n_inst
        x = rng.normal(size=(n, steps, n_feat)).astype(np.float32)
        y = (x[:, -1] @ beta + noise * rng.normal(size=n)).astype(np.float32)
        index = pd.MultiIndex.from_product([dates[lo:hi], insts], names=["datetime", "instrument"])
        sets[name] = FakeSamples(x, y, index)
    return FakeDataset(sets)


@pytest.fixture
def dataset() -> FakeDataset:
    return make_dataset()


#: Small, fast settings for tests (CPU, quiet).
FAST = {
    "d_feat": 3,
    "hidden_size": 8,
    "num_layers": 2,
    "batch_size": 64,
    "n_epochs": 3,
    "lr": 0.01,
    "early_stop": 5,
    "seed": 0,
    "device": "cpu",
    "verbose": False,
    "n_threads": 1,
}
