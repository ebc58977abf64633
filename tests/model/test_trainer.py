"""The training loop's batch split: the same gradients as a whole batch, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alstm.model import ALSTM
from alstm.model.net import ALSTMNet
from alstm.model.trainer import BatchSplit
from tests.model.conftest import FAST, FakeDataset


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(50, 7, 3, generator=gen)
    y = torch.randn(50, generator=gen)
    y[::4] = float("nan")  # masked labels fall into every slice
    w = torch.rand(50, generator=gen)
    return x, y, w


def _gradients(parts: int, weighted: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    net = ALSTMNet(d_feat=3, hidden_size=8, num_layers=2, rnn_type="GRU")
    params = list(net.parameters())
    x, y, w = _batch()
    with BatchSplit(parts) as split:
        loss = split.backward(net, params, x, y, w if weighted else None)
    return loss, [p.grad for p in params]


@pytest.mark.parametrize("parts", [2, 3])  # 50 rows: even and uneven slices
@pytest.mark.parametrize("weighted", [False, True])
def test_split_gradients_equal_the_whole_batch(parts: int, weighted: bool) -> None:
    loss, grads = _gradients(1, weighted)
    split_loss, split_grads = _gradients(parts, weighted)
    assert torch.allclose(split_loss, loss, rtol=1e-6, atol=0)
    for whole, split in zip(grads, split_grads, strict=True):
        assert torch.allclose(split, whole, rtol=1e-5, atol=1e-7)
    again_loss, again = _gradients(parts, weighted)
    assert torch.equal(again_loss, split_loss)
    assert all(torch.equal(a, b) for a, b in zip(again, split_grads, strict=True))


def test_split_restores_the_torch_thread_count() -> None:
    before = torch.get_num_threads()
    with BatchSplit(2):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_batch_threads_fit_is_reproducible_and_close_to_unsplit(dataset: FakeDataset) -> None:
    settings = {**FAST, "n_epochs": 2, "early_stop": 5}
    a = ALSTM(**settings, batch_threads=2).fit(dataset).predict(dataset).to_numpy()
    b = ALSTM(**settings, batch_threads=2).fit(dataset).predict(dataset).to_numpy()
    whole = ALSTM(**settings).fit(dataset).predict(dataset).to_numpy()
    assert np.array_equal(a, b)
    assert np.allclose(a, whole, atol=1e-4)


def test_batch_threads_is_checked(dataset: FakeDataset) -> None:
    with pytest.raises(ValueError, match="batch_threads=0: must be an integer >= 1"):
        ALSTM(**FAST, batch_threads=0).fit(dataset)
    with pytest.raises(ValueError, match=r"batch_threads=2 needs dropout=0 \(got 0\.1\)"):
        ALSTM(**{**FAST, "dropout": 0.1}, batch_threads=2).fit(dataset)
