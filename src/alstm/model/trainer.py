"""The one training loop: sample positions → ``[B, T, F]`` batches → forward, loss, backward."""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TypeVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from alstm.model.cpu_adam import clipped_step
from alstm.model.metrics import masked_mse, masked_sse, mean_daily_ic
from alstm.model.protocols import SampleSet

CLIP_VALUE = 3.0  # Qlib clips every gradient element to [-3, 3] (by value, not by norm)
Tick = Callable[[], None]
_T = TypeVar("_T")


@dataclass
class Batches:
    """Batches of one segment's samples as tensors on ``device``."""

    samples: SampleSet
    segment: str
    batch_size: int
    device: torch.device
    fill_nan: float | None = None

    def count(self, n_rows: int, drop_last: bool) -> int:
        """Number of batches over ``n_rows`` positions."""
        return n_rows // self.batch_size if drop_last else -(-n_rows // self.batch_size)

    def iterate(
        self, order: np.ndarray, drop_last: bool
    ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        """``(rows, features [B, T, F] float32, label [B] float32)`` over ``order`` in chunks of
        ``batch_size``; a last partial chunk is dropped when ``drop_last``."""
        for start in range(0, self.count(len(order), drop_last) * self.batch_size, self.batch_size):
            rows = order[start : start + self.batch_size]
            x, y = self.samples.gather(rows)
            x = self._finite(np.asarray(x, dtype=np.float32), rows)
            y = np.asarray(y, dtype=np.float32)
            yield rows, torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)

    @cached_property
    def date_codes(self) -> np.ndarray:
        """``int64 [N]``: the date of each sample as a code (for per-date metrics)."""
        return pd.factorize(self.samples.index.get_level_values(0))[0]

    def _finite(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        finite = np.isfinite(x)
        if finite.all():
            return x
        if self.fill_nan is not None:
            return np.where(finite, x, np.float32(self.fill_nan))
        b, t, f = np.argwhere(~finite)[0]
        raise ValueError(
            f"{self.segment} features contain NaN/inf at feature column {f} (time step {t} of "
            f"sample {self.samples.index[rows[b]]}); pass fill_nan=<value> to fill them"
        )


def train_epoch(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Batches,
    order: np.ndarray,
    weight: np.ndarray | None = None,
    tick: Tick | None = None,
    parts: int = 1,
) -> float:
    """One pass of optimizer steps over ``order`` (last partial batch dropped, as Qlib); returns
    the mean batch loss. ``weight``: ``[N]`` per-sample loss weights by position, or None.
    ``parts`` > 1: each batch's gradient is computed by ``BatchSplit`` (see there)."""
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    losses = _per_batch(batches.count(len(order), drop_last=True), batches.device)
    items = batches.iterate(order, drop_last=True)
    with BatchSplit(parts) as split:
        for i, (rows, x, y) in enumerate(split.prefetched(items)):
            w = None if weight is None else torch.from_numpy(weight[rows]).to(batches.device)
            losses[i], grads = split.gradients(net, params, x, y, w)
            clipped_step(optimizer, params, grads, CLIP_VALUE)
            if tick:
                tick()
    return _mean(losses)


class BatchSplit:
    """The masked-MSE loss of a batch and its gradients (one summand per slice, which
    ``clipped_step`` adds up), or its scores, computed whole or, with ``parts`` > 1, as ``parts``
    row slices whose passes run at once on as many threads, each with one torch thread.

    Why: on a 2-core CPU, torch's intra-op threads barely speed up a GRU step on a batch of 800
    (its products are small and run one time step after another), while two independent
    half-batches keep both cores busy (measured: 190 → 126 ms per step at T = 60, d_feat = 6).
    Each slice's loss is its masked sum of squares over the whole batch's count of finite
    labels, so the slices' gradients add up to the batch's; they are added in slice order, which
    makes a split run reproducible. It equals an unsplit run up to float rounding only.
    Dropout masks would be drawn from one generator by racing threads, so a split needs
    dropout 0 (``ALSTM`` checks this).
    """

    def __init__(self, parts: int = 1) -> None:
        self.parts = parts
        self._pool: ThreadPoolExecutor | None = None
        self._threads = 0
        # ``prefetched``'s items, and the next one once queued on the pool
        self._source: Iterator | None = None
        self._upcoming: Future | None = None

    def __enter__(self) -> BatchSplit:
        if self.parts > 1:
            self._threads = torch.get_num_threads()
            torch.set_num_threads(1)  # before the pool starts: new threads inherit it
            # the calling thread runs the last slice itself
            self._pool = ThreadPoolExecutor(self.parts - 1, thread_name_prefix="alstm-batch")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            torch.set_num_threads(self._threads)

    def gradients(
        self,
        net: nn.Module,
        params: list[torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        w: torch.Tensor | None,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]]]:
        """Loss (detached scalar) of ``net(x)`` against ``y`` (weights ``w``) and, for each of
        ``params``, its gradient as one summand per slice (in slice order: their sum is the
        batch's gradient)."""
        if self._pool is None:
            loss = masked_mse(net(x), y, w)
            return loss.detach(), [(g,) for g in torch.autograd.grad(loss, params)]
        count = torch.isfinite(y).sum()

        def part(rows: slice) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
            loss = masked_sse(net(x[rows]), y[rows], None if w is None else w[rows]) / count
            return loss.detach(), torch.autograd.grad(loss, params)

        losses, grads = zip(*self._map(part, self._slices(len(y))), strict=True)
        return functools.reduce(operator.add, losses), list(zip(*grads, strict=True))

    def scores(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``net(x)``, in the caller's grad mode; with ``parts`` > 1 its row slices' scores,
        computed at once and concatenated (rows do not interact: the same scores up to the
        products' rounding)."""
        if self._pool is None:
            return net(x)
        grad = torch.is_grad_enabled()  # grad mode is per thread

        def part(rows: slice) -> torch.Tensor:
            with torch.set_grad_enabled(grad):
                return net(x[rows])

        return torch.cat(self._map(part, self._slices(len(x))))

    def prefetched(self, items: Iterator[_T]) -> Iterator[_T]:
        """``items`` (never None), with ``parts`` > 1 each made ahead on the pool's thread: the
        next one is queued behind that thread's slice of the current item's passes, so it is
        made while the calling thread finishes its own slice and steps the optimizer (or takes
        the scores). One at a time per ``BatchSplit``.

        Why: gathering a batch is compiled code that releases the GIL, and the pool's thread
        is otherwise idle from the end of its slice to the next batch. Right after the passes,
        with the caches cold, gathering an Alpha158 batch took ~0.9 ms of each ~20 ms.
        Made after the whole batch's passes, it still left ~0.4 ms of waiting per batch."""
        if self._pool is None:
            yield from items
            return
        self._source, self._upcoming = items, None
        try:
            # the next is queued by ``_map`` when an item's passes start, else here
            while (item := self._queue_next().result()) is not None:
                self._upcoming = None
                yield item
        finally:
            self._source = self._upcoming = None

    def _queue_next(self) -> Future:
        """The next of ``prefetched``'s items, queued on the pool's thread unless it is."""
        assert self._pool is not None
        if self._upcoming is None:
            self._upcoming = self._pool.submit(next, self._source, None)
        return self._upcoming

    def _map(self, f: Callable[[slice], _T], slices: list[slice]) -> list[_T]:
        """``[f(s) for s in slices]``, at once: the last on the calling thread, the others on
        the pool's (which saves a thread hand-off per batch)."""
        assert self._pool is not None
        pending = [self._pool.submit(f, s) for s in slices[:-1]]
        if self._source is not None:
            self._queue_next()  # runs on the pool's thread after its slice
        last = f(slices[-1])
        return [p.result() for p in pending] + [last]

    def _slices(self, n_rows: int) -> list[slice]:
        bounds = np.linspace(0, n_rows, self.parts + 1).astype(int)
        return [slice(lo, hi) for lo, hi in itertools.pairwise(bounds)]


@torch.no_grad()
def evaluate(
    net: nn.Module, batches: Batches, metric: str, tick: Tick | None = None, parts: int = 1
) -> float:
    """Score of the whole segment in stored order, last partial batch dropped (as Qlib): the mean
    over batches of −masked MSE (``metric="loss"``) or the mean daily IC (``metric="ic"``).
    ``parts`` > 1: the forward passes run as that many slices at once (``BatchSplit``)."""
    net.eval()
    order = np.arange(len(batches.samples))
    n_batches = batches.count(len(order), drop_last=True)
    scores = _per_batch(n_batches, batches.device)
    n_ic = n_batches * batches.batch_size if metric == "ic" else 0
    preds, labels = np.empty(n_ic, np.float32), np.empty(n_ic, np.float32)
    for i, (pred, y) in enumerate(_scored(net, batches, order, True, tick, parts)):
        if metric == "ic":
            rows = slice(i * batches.batch_size, (i + 1) * batches.batch_size)
            preds[rows], labels[rows] = pred.cpu().numpy(), y.cpu().numpy()
        else:
            scores[i] = -masked_mse(pred, y)
    if metric != "ic":
        return _mean(scores)
    if not n_batches:
        return float("nan")
    return mean_daily_ic(preds, labels, batches.date_codes[: len(preds)])


@torch.no_grad()
def predict(
    net: nn.Module, batches: Batches, tick: Tick | None = None, parts: int = 1
) -> np.ndarray:
    """Scores ``float32 [N]`` of every sample, in sample order (``parts``: as ``evaluate``)."""
    net.eval()
    order = np.arange(len(batches.samples))
    out = np.empty(len(order), np.float32)
    start = 0
    for pred, _ in _scored(net, batches, order, False, tick, parts):
        out[start : start + len(pred)] = pred.cpu().numpy()
        start += len(pred)
    return out


#: Rows per forward pass when scoring (whole batches, at least one): larger products run faster
#: (an Alpha360 batch of 800 scored in 34 instead of 40 ms when paired with the next). Rows do
#: not interact, so scores equal batch-by-batch ones up to the products' rounding (bit for bit
#: at hidden 64 and batch 800, both benchmark shapes).
SCORE_ROWS = 1600


def _scored(
    net: nn.Module,
    batches: Batches,
    order: np.ndarray,
    drop_last: bool,
    tick: Tick | None,
    parts: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(scores, labels)`` of each batch over ``order``, the forward pass run on groups of
    consecutive batches (split in ``parts``)."""
    size = batches.batch_size
    grouped = replace(batches, batch_size=size * max(1, SCORE_ROWS // size))
    items = grouped.iterate(order[: batches.count(len(order), drop_last) * size], False)
    with BatchSplit(parts) as split:
        for _, x, y in split.prefetched(items):
            pred = split.scores(net, x)
            for lo in range(0, len(y), size):
                yield pred[lo : lo + size], y[lo : lo + size]
                if tick:
                    tick()


def attention(net: nn.Module, batches: Batches, rows: np.ndarray) -> np.ndarray:
    """Attention weights ``float32 [len(rows), T]`` (summing to 1 over time) of the samples at
    positions ``rows``."""
    net.eval()
    out = []
    with torch.no_grad():
        for _, x, _ in batches.iterate(rows, drop_last=False):
            out.append(net(x, return_attention=True)[1].cpu().numpy())
    return np.concatenate(out) if out else np.empty((0, batches.samples.step_len), np.float32)


def _per_batch(n_batches: int, device: torch.device) -> torch.Tensor:
    """``float64 [n_batches]`` on ``device``, for a pass's per-batch values (written in place).

    Why not a list of each batch's scalar tensor: those stay alive for the whole pass, and each
    pins a chunk of the C heap between the blocks that later batches free, so the freed blocks
    cannot merge and the heap keeps growing (an Alpha360 scoring pass at half the benchmark's
    size grew RSS by ~1 GB)."""
    return torch.empty(n_batches, dtype=torch.float64, device=device)


def _mean(values: torch.Tensor) -> float:
    """Mean of a pass's per-batch values (NaN when empty), one host sync."""
    return values.mean().item() if len(values) else float("nan")
