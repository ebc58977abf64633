"""The training loop: the batch split (same gradients as a whole batch, reproducibly) and grouped
scoring (same scores as batch by batch)."""

from __future__ import annotations

import functools
import operator
import threading
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch

from alstm.model import ALSTM, cpu_attention, cpu_gru, cpu_projection, kernels, trainer
from alstm.model.net import ALSTMNet
from alstm.model.trainer import Batches, BatchSplit, evaluate, predict
from tests.model.conftest import FAST, FakeDataset, FakeSamples


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
        loss, grads = split.gradients(net, params, x, y, w if weighted else None)
    assert all(len(summands) == parts for summands in grads)
    return loss, [functools.reduce(operator.add, summands) for summands in grads]


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


class _Recorder(torch.nn.Module):
    """Scores each row as 0 and records which thread ran each slice; on the calling thread, a
    slice first waits (up to 5 s) for the next item to be made."""

    def __init__(self, events: list, made: list[threading.Event]) -> None:
        super().__init__()
        self.events, self.made, self.caller = events, made, threading.get_ident()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if threading.get_ident() == self.caller:
            done = sum(
                1 for kind, thread in self.events if kind == "slice" and thread == self.caller
            )
            if done + 1 < len(self.made):
                assert self.made[done + 1].wait(5), "the next item waited for the passes"
        self.events.append(("slice", threading.get_ident()))
        return x.new_zeros(len(x))


def test_prefetched_makes_the_next_item_during_the_passes() -> None:
    caller = threading.get_ident()
    events: list = []
    made = [threading.Event() for _ in range(3)]

    def items() -> Iterator[int]:
        for i in range(3):
            events.append(("item", threading.get_ident()))
            made[i].set()
            yield i

    net = _Recorder(events, made)
    with BatchSplit(2) as split:
        got = [
            item
            for item in split.prefetched(items())
            if split.scores(net, torch.zeros(4, 1, 1)) is not None
        ]
    assert got == [0, 1, 2]
    # the pool's thread makes each next item once its slice of the current one is done
    assert [kind for kind, thread in events if thread != caller] == ["item", "slice"] * 3
    assert [kind for kind, thread in events if thread == caller] == ["slice"] * 3


def test_prefetched_without_a_pool_is_the_items() -> None:
    with BatchSplit(1) as split:
        assert list(split.prefetched(iter([3, 1, 2]))) == [3, 1, 2]


def test_a_failed_gathering_reaches_the_training_loop() -> None:
    x = np.ones((40, 5, 3), np.float32)
    x[7, 2, 1] = np.nan
    index = pd.MultiIndex.from_product([pd.bdate_range("2020-01-01", periods=4), range(10)])
    samples = FakeSamples(x, np.zeros(40, np.float32), index)
    batches = Batches(samples, "train", 8, torch.device("cpu"))
    net = ALSTMNet(d_feat=3, hidden_size=8)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="NaN/inf at feature column 1"):
        trainer.train_epoch(net, opt, batches, np.arange(40), parts=2)


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


@pytest.mark.parametrize("metric", ["loss", "ic"])
def test_grouped_scoring_equals_batch_by_batch(
    dataset: FakeDataset, metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    net = ALSTMNet(d_feat=3, hidden_size=8, num_layers=2)
    samples = dataset.sets["train"]  # 720 samples: 7 batches of 100 and a partial one
    batches = Batches(samples, "train", 100, torch.device("cpu"))
    ticks: list[int] = []
    grouped = evaluate(net, batches, metric, lambda: ticks.append(1)), predict(net, batches)
    assert len(ticks) == 7  # one per scored batch, the partial one dropped
    monkeypatch.setattr(trainer, "SCORE_ROWS", 1)  # one batch per forward pass
    single = evaluate(net, batches, metric), predict(net, batches)
    # equal up to the matrix products' rounding (bit for bit at the benchmarks' sizes)
    assert grouped[0] == pytest.approx(single[0], rel=1e-6)
    assert np.allclose(grouped[1], single[1], rtol=0, atol=1e-6)
    with torch.no_grad():
        by_hand = net(torch.from_numpy(samples.x)).numpy()
    assert len(grouped[1]) == 720 and np.allclose(grouped[1], by_hand, atol=1e-6)


@pytest.mark.parametrize("parts", [2, 3])
def test_split_scoring_equals_whole(
    dataset: FakeDataset, parts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    net = ALSTMNet(d_feat=3, hidden_size=8, num_layers=2)
    batches = Batches(dataset.sets["train"], "train", 100, torch.device("cpu"))
    whole = evaluate(net, batches, "loss"), predict(net, batches)
    grad_modes: list[bool] = []
    forward = net.forward

    def recording(*args: torch.Tensor, **kwargs: bool) -> torch.Tensor:
        grad_modes.append(torch.is_grad_enabled())
        return forward(*args, **kwargs)

    monkeypatch.setattr(net, "forward", recording)
    split = evaluate(net, batches, "loss", parts=parts), predict(net, batches, parts=parts)
    assert grad_modes and not any(grad_modes)  # the slices run without autograd, as the caller
    assert split[0] == pytest.approx(whole[0], rel=1e-6)
    assert np.allclose(split[1], whole[1], rtol=0, atol=1e-6)
    assert np.array_equal(predict(net, batches, parts=parts), split[1])  # reproducible


@pytest.mark.skipif(kernels.SGEMM is None, reason="this torch has no oneMKL sgemm_")
def test_split_runs_the_compiled_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for module, name in [
        (cpu_gru, "_layer_forward_compiled"),
        (cpu_gru, "_layer_backward_compiled"),
        (cpu_projection, "_backward"),
        (cpu_attention, "_backward"),
    ]:
        original = getattr(module, name)
        monkeypatch.setattr(
            module, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a)
        )
    _gradients(2, weighted=False)
    # two slices: each runs both GRU layers, the projection and the attention head compiled
    assert sorted(calls) == sorted(
        ["_layer_forward_compiled"] * 4 + ["_layer_backward_compiled"] * 4 + ["_backward"] * 4
    )
