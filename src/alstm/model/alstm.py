"""ALSTM: hyperparameters, ``fit`` (checkpointed, resumable) and ``predict``.

One model stands for Qlib's two: ``pytorch_alstm.ALSTM`` (Alpha360 rows served as 60 steps × 6
features) and ``pytorch_alstm_ts.ALSTM`` (Alpha158 windows of 20 steps × 20 features). The dataset
decides how samples become ``[B, T, F]`` batches; the training loop is the same for both.

Where this differs from Qlib, and why:

- ``rnn_type`` is honoured (Qlib always builds a GRU); ``metric="ic"`` is an addition, and so is
  ``score_train=False``, which skips scoring the train set after every epoch (Qlib's workflow
  throws that score away; alstm records each training pass's mean batch loss either way).
- Shuffles come from a numpy ``Generator`` seeded with ``seed`` (Qlib: the global numpy state,
  or torch's sampler for TS), so a seed gives Qlib's initial weights but not its batch order.
- Qlib's TS model scores the train set through its shuffled loader (a fresh order each epoch,
  the last partial batch dropped); both configs here score it in stored order. Only
  ``evals_result["train"]`` can differ (by which < batch_size samples are left out).
- Labels that are ±inf are masked out of the training loss too (Qlib masks only NaN there; it
  cannot happen with CSRankNorm labels). NaN/inf features are an error unless ``fill_nan``.
- Inputs Qlib would turn into NaN scores or a crash are errors with a message: a segment with
  fewer samples than one batch, no finite valid score in any epoch.
- ``save_path`` is a directory (checkpoint every epoch, best weights and config at the end);
  Qlib writes only the best state_dict to a file. A GPU asked for but absent warns.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from alstm.model.checkpoint import (
    CHECKPOINT,
    CONFIG,
    WEIGHTS,
    load_tensors,
    restore_rng,
    rng_state,
    save_atomic,
    write_json_atomic,
)
from alstm.model.cpu_adam import CompiledAdam
from alstm.model.net import HEADS, PRECISIONS, RNN_TYPES, ALSTMNet
from alstm.model.progress import TrainingProgress
from alstm.model.protocols import SampleSet, SampleSource
from alstm.model.registry import register_model
from alstm.model.runtime import release_free_memory, resolve_device, torch_settings
from alstm.model.stopping import EarlyStopping
from alstm.model.trainer import Batches, attention, evaluate, predict, train_epoch

METRICS = ("loss", "ic", "")  # "" is Qlib's default spelling of "loss"
LOSSES = ("mse",)
OPTIMIZERS = ("adam", "gd")
#: Settings that may differ between a run and its resumption (they do not change the result).
RESUMABLE_CHANGES = frozenset({"GPU", "device", "n_jobs", "n_threads", "verbose"})


@register_model("ALSTM")
class ALSTM:
    """Attention LSTM/GRU regressor with Qlib's training semantics (SPEC §7).

    Every argument is stored unchanged (``get_params``); nothing is computed before ``fit``.
    ``metric``: early-stopping score, ``"loss"`` (−masked MSE, Qlib's) or ``"ic"`` (mean daily
    IC). ``optimizer``: ``"adam"`` or ``"gd"`` (plain SGD), case-insensitive as in Qlib. ``GPU``:
    Qlib's device number (None: the first GPU if any, else the CPU; < 0: the CPU); ``device``
    (e.g. ``"cpu"``, ``"cuda:1"``) overrides it. ``seed``: None draws one. ``rnn_type``: ``"GRU"``
    or ``"LSTM"`` (honoured, unlike Qlib). ``head``: what the output layer reads, ``"both"``
    (Qlib's: last step and attention-pooled), ``"last"`` or ``"attention"`` (ablations).
    ``precision``: ``"float32"`` (Qlib's) or ``"bfloat16"``, an addition: the GRU's matrix
    products take bfloat16 operands and add in float32 (oneMKL's bfloat16 product, about twice
    as fast as its float32 one on a CPU with AVX512-BF16). A GRU without dropout only. Not the
    same run faster: the rounding changes the training path, so scores differ as between seeds.
    ``n_jobs``: accepted for Qlib configs; batches are gathered in-process, so it is not used.
    ``n_threads``: torch CPU threads during fit/predict (None: torch's current setting).
    ``batch_threads``: > 1 splits each training batch, and each group of batches scored, into
    that many slices run at once on as many threads of one torch thread each
    (``trainer.BatchSplit``: faster on a small CPU; results equal an unsplit run's up to float
    rounding and are reproducible for a given value; needs ``dropout=0``).
    ``fill_nan``: None rejects NaN/inf features with an error, a number replaces them.
    ``score_train``: score the whole train set after every epoch, as Qlib does. That score only
    fills ``evals_result["train"]`` (early stopping reads the valid score), so False skips the
    pass (about a fifth of an epoch) and leaves that list empty; the predictions are the same.
    ``verbose``: rich progress on the terminal.
    """

    def __init__(
        self,
        d_feat: int = 6,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        n_epochs: int = 200,
        lr: float = 0.001,
        metric: str = "loss",
        batch_size: int = 2000,
        early_stop: int = 20,
        loss: str = "mse",
        optimizer: str = "adam",
        GPU: int | None = None,  # Qlib's name
        device: str | None = None,
        seed: int | None = None,
        rnn_type: str = "GRU",
        head: str = "both",
        precision: str = "float32",
        n_jobs: int | None = None,
        n_threads: int | None = None,
        batch_threads: int = 1,
        fill_nan: float | None = None,
        score_train: bool = True,
        verbose: bool = True,
    ) -> None:
        self.d_feat = d_feat
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.n_epochs = n_epochs
        self.lr = lr
        self.metric = metric
        self.batch_size = batch_size
        self.early_stop = early_stop
        self.loss = loss
        self.optimizer = optimizer
        self.GPU = GPU
        self.device = device
        self.seed = seed
        self.rnn_type = rnn_type
        self.head = head
        self.precision = precision
        self.n_jobs = n_jobs
        self.n_threads = n_threads
        self.batch_threads = batch_threads
        self.fill_nan = fill_nan
        self.score_train = score_train
        self.verbose = verbose

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, as given."""
        return {name: getattr(self, name) for name in inspect.signature(ALSTM).parameters}

    def __repr__(self) -> str:
        defaults = _defaults()
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k]]
        return f"ALSTM({', '.join(changed)})"

    # ---------------------------------------------------------------------------------- fit
    def fit(
        self,
        dataset: SampleSource,
        evals_result: dict[str, list[float]] | None = None,
        save_path: str | Path | None = None,
        resume: bool = False,
        sample_weight: np.ndarray | None = None,
    ) -> ALSTM:
        """Train on ``dataset.samples("train")``, early-stop on ``"valid"``, keep the best epoch.

        ``evals_result`` gets ``"train"``/``"valid"`` score lists (one entry per epoch; no train
        scores without ``score_train``) and ``"train_loss"``, each training pass's mean batch loss.
        ``save_path``: a directory that receives ``checkpoint.pt`` after every epoch and
        ``model.pt`` + ``config.json`` at the end; with ``resume=True`` an interrupted run there
        continues from its last completed epoch (same result as an uninterrupted run).
        ``sample_weight``: ``[n_train]`` loss weights in train sample order (default all 1).
        """
        self._check_params()
        train, valid = self._samples(dataset, "train"), self._samples(dataset, "valid")
        weight = self._train_weight(sample_weight, len(train))
        directory = Path(save_path) if save_path is not None else None
        if resume and directory is None:
            raise ValueError("resume=True needs save_path (the directory of the interrupted run)")
        saved = None
        if resume and directory is not None and (directory / CHECKPOINT).exists():
            saved = load_tensors(directory / CHECKPOINT)
            self._check_resumable(saved, len(train), len(valid))
        device = resolve_device(self.GPU, self.device)
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch_settings(self.n_threads), torch.random.fork_rng(devices=cuda):
            seed = self.seed if self.seed is not None else np.random.SeedSequence().entropy % 2**63
            torch.manual_seed(seed)  # before building the net: Qlib's initial weights for a seed
            net = self._build_net().to(device)
            run = _Run(net, self._build_optimizer(net), EarlyStopping(self.early_stop), seed)
            if saved is not None:
                run.load_state_dict(saved, device)
            if evals_result is not None:  # filled as training goes, like Qlib's
                evals_result.update(run.history)
            if directory is not None:
                directory.mkdir(parents=True, exist_ok=True)
            train_b = Batches(train, "train", self.batch_size, device, self.fill_nan)
            valid_b = Batches(valid, "valid", self.batch_size, device, self.fill_nan)
            with TrainingProgress(self.verbose, self.n_epochs, run.epoch) as progress:
                while not run.finished:
                    self._epoch(run, train_b, valid_b, weight, progress)
                    if directory is not None:
                        state = run.state_dict(device)
                        state["config"] = json.dumps(self.get_params())
                        state["sizes"] = [len(train), len(valid)]
                        save_atomic(state, directory / CHECKPOINT)
        if run.stopper.best_state is None:
            raise ValueError(
                f"no epoch gave a finite valid score (scores: {run.history['valid']}); check "
                "the valid labels (all NaN?)"
            )
        net.load_state_dict(run.stopper.best_state)
        self.net_, self.device_ = net, device
        self.best_epoch_, self.best_score_ = run.stopper.best_epoch, run.stopper.best_score
        self.evals_result_ = run.history
        if directory is not None:
            self.save(directory)
        return self

    def _epoch(
        self,
        run: _Run,
        train: Batches,
        valid: Batches,
        weight: np.ndarray | None,
        progress: TrainingProgress,
    ) -> None:
        """One epoch: a shuffled training pass, then the train (if ``score_train``) and valid
        scores (Qlib's order)."""
        metric = self.metric or "loss"
        n_train, n_valid = len(train.samples), len(valid.samples)
        progress.phase("train", train.count(n_train, drop_last=True))
        order = run.np_rng.permutation(n_train)
        loss = train_epoch(
            run.net, run.optimizer, train, order, weight, progress.tick, self.batch_threads
        )
        release_free_memory()  # the passes allocate on different threads (see there)
        train_score = None
        if self.score_train:
            progress.phase("eval train", train.count(n_train, drop_last=True))
            train_score = evaluate(run.net, train, metric, progress.tick, self.batch_threads)
            run.history["train"].append(train_score)
        progress.phase("eval valid", valid.count(n_valid, drop_last=True))
        valid_score = evaluate(run.net, valid, metric, progress.tick, self.batch_threads)
        release_free_memory()
        run.history["valid"].append(valid_score)
        run.history["train_loss"].append(loss)
        stop = run.stopper.update(run.epoch, valid_score, run.net)
        progress.epoch_done(run.epoch, loss, train_score, valid_score, run.stopper.best_epoch)
        run.epoch += 1
        run.finished = stop or run.epoch >= self.n_epochs

    # ------------------------------------------------------------------------------ predict
    def predict(self, dataset: SampleSource, segment: str = "test") -> pd.Series:
        """Scores of every sample of ``segment`` (float32), named ``score``, indexed (datetime,
        instrument) in the sample set's order."""
        if not hasattr(self, "net_"):
            raise ValueError("the model is not fitted yet: call fit() or ALSTM.load() first")
        samples = self._samples(dataset, segment)
        batches = Batches(samples, segment, self.batch_size, self.device_, self.fill_nan)
        with torch_settings(self.n_threads):
            scores = predict(self.net_, batches, parts=self.batch_threads)
        return pd.Series(scores, index=samples.index, name="score")

    def attention(
        self, dataset: SampleSource, segment: str = "test", max_samples: int | None = None
    ) -> tuple[np.ndarray, pd.MultiIndex]:
        """Attention weights ``float32 [n, T]`` over the time steps (step T−1 = the sample's own
        day) and their (datetime, instrument) index, for every sample of ``segment`` or an
        evenly spaced subset of at most ``max_samples``."""
        if not hasattr(self, "net_"):
            raise ValueError("the model is not fitted yet: call fit() or ALSTM.load() first")
        samples = self._samples(dataset, segment)
        rows = np.arange(len(samples))
        if max_samples is not None and len(rows) > max_samples:
            rows = np.linspace(0, len(rows) - 1, max_samples).astype(np.int64)
        batches = Batches(samples, segment, self.batch_size, self.device_, self.fill_nan)
        with torch_settings(self.n_threads):
            weights = attention(self.net_, batches, rows)
        return weights, samples.index[rows]

    # --------------------------------------------------------------------------- save/load
    def save(self, directory: str | Path) -> None:
        """Write the fitted weights (``model.pt``, a state_dict) and ``config.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_atomic(self.net_.state_dict(), directory / WEIGHTS)
        write_json_atomic({"model": "ALSTM", "params": self.get_params()}, directory / CONFIG)

    @classmethod
    def load(cls, directory: str | Path) -> ALSTM:
        """A fitted model from what ``save`` wrote."""
        directory = Path(directory)
        config = json.loads((directory / CONFIG).read_text())
        model = cls(**config["params"])
        model._check_params()
        model.device_ = resolve_device(model.GPU, model.device)
        model.net_ = model._build_net()
        model.net_.load_state_dict(load_tensors(directory / WEIGHTS))
        model.net_.to(model.device_)
        return model

    # ----------------------------------------------------------------------------- helpers
    def _check_params(self) -> None:
        checks = [
            ("rnn_type", str(self.rnn_type).upper(), RNN_TYPES),
            ("head", self.head, HEADS),
            ("loss", self.loss, LOSSES),
            ("optimizer", str(self.optimizer).lower(), OPTIMIZERS),
            ("metric", self.metric, METRICS),
            ("precision", self.precision, PRECISIONS),
        ]
        for name, value, valid in checks:
            if value not in valid:
                shown = ", ".join(repr(v) for v in valid)
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; valid: {shown}")
        for name in (
            "n_epochs",
            "batch_size",
            "hidden_size",
            "num_layers",
            "d_feat",
            "batch_threads",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}={value!r}: must be an integer >= 1")
        if not isinstance(self.score_train, bool):
            raise ValueError(f"score_train={self.score_train!r}: must be true or false")
        if self.batch_threads > 1 and self.dropout > 0:
            raise ValueError(
                f"batch_threads={self.batch_threads} needs dropout=0 (got {self.dropout}): "
                "dropout masks drawn by concurrent threads would make runs irreproducible"
            )
        if self.precision == "bfloat16" and (
            str(self.rnn_type).upper() != "GRU" or (self.dropout > 0 and self.num_layers > 1)
        ):
            raise ValueError(
                "precision='bfloat16' needs rnn_type='GRU' and no dropout between layers (got "
                f"rnn_type={self.rnn_type!r}, dropout={self.dropout}, "
                f"num_layers={self.num_layers})"
            )

    def _samples(self, dataset: SampleSource, segment: str) -> SampleSet:
        """The segment's samples, checked: not empty, ``d_feat`` features per step, and for the
        training segments at least one full batch (Qlib drops partial batches)."""
        samples = dataset.samples(segment)
        if len(samples) == 0:
            span = getattr(dataset, "segments", {}).get(segment)
            dates = f" ({pd.Timestamp(span[0]).date()} .. {pd.Timestamp(span[1]).date()})"
            raise ValueError(
                f"the {segment} segment{dates if span else ''} has no samples; check the "
                "dataset's segments and data range"
            )
        if samples.n_features != self.d_feat:
            raise ValueError(
                f"d_feat={self.d_feat} but the {segment} samples have {samples.n_features} "
                "features per step"
            )
        if segment in ("train", "valid") and len(samples) < self.batch_size:
            raise ValueError(
                f"the {segment} segment has {len(samples)} samples, fewer than batch_size="
                f"{self.batch_size}: every batch would be dropped"
            )
        return samples

    @staticmethod
    def _train_weight(sample_weight: np.ndarray | None, n_train: int) -> np.ndarray | None:
        if sample_weight is None:
            return None
        weight = np.asarray(sample_weight, dtype=np.float32)
        if weight.shape != (n_train,):
            raise ValueError(f"sample_weight has shape {weight.shape}; expected ({n_train},)")
        return weight

    def _check_resumable(self, saved: dict, n_train: int, n_valid: int) -> None:
        # A setting the checkpoint lacks (added to ALSTM after it was written) had its default.
        mine, theirs = self.get_params(), {**_defaults(), **json.loads(saved["config"])}
        differ = sorted(k for k in mine if k not in RESUMABLE_CHANGES and mine[k] != theirs.get(k))
        if differ:
            pairs = ", ".join(f"{k}: saved {theirs.get(k)!r} vs {mine[k]!r}" for k in differ)
            raise ValueError(f"cannot resume: the checkpoint has other settings ({pairs})")
        if list(saved["sizes"]) != [n_train, n_valid]:
            raise ValueError(
                f"cannot resume: the checkpoint saw {saved['sizes']} train/valid samples, the "
                f"dataset has {[n_train, n_valid]}"
            )

    def _build_net(self) -> ALSTMNet:
        return ALSTMNet(
            self.d_feat,
            self.hidden_size,
            self.num_layers,
            self.dropout,
            self.rnn_type,
            self.head,
            self.precision,
        )

    def _build_optimizer(self, net: ALSTMNet) -> torch.optim.Optimizer:
        # both give torch's default results bit for bit (tested); foreach: one call per
        # operation over all parameters, where torch's CPU default loops over them in Python
        if str(self.optimizer).lower() == "adam":
            return CompiledAdam(net.parameters(), lr=self.lr, foreach=True)
        return torch.optim.SGD(net.parameters(), lr=self.lr, foreach=True)


def _defaults() -> dict[str, Any]:
    """ALSTM's constructor defaults."""
    return {k: p.default for k, p in inspect.signature(ALSTM).parameters.items()}


def _empty_history() -> dict[str, list[float]]:
    """Per-epoch records of a run: train and valid scores, training passes' mean loss."""
    return {"train": [], "valid": [], "train_loss": []}


@dataclass
class _Run:
    """The state of one training run: everything a checkpoint must hold to continue it."""

    net: ALSTMNet
    optimizer: torch.optim.Optimizer
    stopper: EarlyStopping
    seed: int
    epoch: int = 0  # epochs completed
    finished: bool = False
    history: dict[str, list[float]] = field(default_factory=_empty_history)
    np_rng: np.random.Generator = field(init=False)  # the shuffles

    def __post_init__(self) -> None:
        self.np_rng = np.random.default_rng(self.seed)

    def state_dict(self, device: torch.device) -> dict[str, Any]:
        """Tensors, numbers and JSON text only (loadable with ``weights_only=True``)."""
        return {
            "epoch": self.epoch,
            "finished": self.finished,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "stopper": self.stopper.state_dict(),
            "evals_result": self.history,
            "rng": rng_state(self.np_rng, device),
        }

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        """Continue from what ``state_dict`` returned (random generators included)."""
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.stopper.load_state_dict(state["stopper"])
        # keys recorded since a checkpoint was written start empty
        saved = {k: list(v) for k, v in state["evals_result"].items()}
        self.history = {**_empty_history(), **saved}
        self.epoch, self.finished = int(state["epoch"]), bool(state["finished"])
        restore_rng(state["rng"], self.np_rng, device)
