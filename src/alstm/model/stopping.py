"""Early stopping on a validation score (higher is better), keeping the best weights."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch


@dataclass
class EarlyStopping:
    """Qlib's rule: a score strictly above the best so far saves the weights and resets ``wait``;
    otherwise ``wait`` grows and training stops once it reaches ``patience``."""

    patience: int
    best_score: float = -math.inf
    best_epoch: int = -1
    wait: int = 0
    best_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def update(self, epoch: int, score: float, net: torch.nn.Module) -> bool:
        """Record ``epoch``'s ``score`` (a copy of ``net``'s weights if it is the best); True means
        stop now."""
        if score > self.best_score:  # NaN never improves, as in Qlib
            self.best_score, self.best_epoch, self.wait = score, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            return False
        self.wait += 1
        return self.wait >= self.patience

    def state_dict(self) -> dict:
        """Everything needed to continue after a restart (tensors and plain numbers)."""
        return {
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned."""
        self.best_score = float(state["best_score"])
        self.best_epoch = int(state["best_epoch"])
        self.wait = int(state["wait"])
        self.best_state = state["best_state"]
