"""Training loss and early-stopping scores."""

from __future__ import annotations

import numpy as np
import torch


def masked_sse(
    pred: torch.Tensor, label: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Sum of ``weight · (pred − label)²`` over the entries with a finite label (scalar).
    ``pred``, ``label``, ``weight``: ``[B]``."""
    # where() rather than boolean indexing: no host sync on GPU, and the gradient of masked
    # entries is exactly 0 (the NaN labels never reach the backward pass).
    sq = torch.where(torch.isfinite(label), pred - label, 0.0).square()
    if weight is not None:
        sq = sq * weight
    return sq.sum()


def masked_mse(
    pred: torch.Tensor, label: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of ``weight · (pred − label)²`` over the entries with a finite label (scalar; NaN when
    there is none). ``pred``, ``label``, ``weight``: ``[B]``."""
    return masked_sse(pred, label, weight) / torch.isfinite(label).sum()


def mean_daily_ic(pred: np.ndarray, label: np.ndarray, dates: np.ndarray) -> float:
    """Mean over dates of the Pearson correlation of ``pred`` and ``label`` (``[N]``) among the
    samples of each date (``dates``: ``int [N]`` date codes); samples with a non-finite label are
    left out, dates with fewer than 2 samples or no variance are skipped (NaN when none is left)."""
    keep = np.isfinite(label)
    x, y = pred[keep].astype(np.float64), label[keep].astype(np.float64)
    codes = np.unique(dates[keep], return_inverse=True)[1]
    count = np.bincount(codes)

    def per_date(v: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=v)

    mx, my = per_date(x) / count, per_date(y) / count
    dx, dy = x - mx[codes], y - my[codes]
    cov, vx, vy = per_date(dx * dy), per_date(dx * dx), per_date(dy * dy)
    ok = (count > 1) & (vx > 0) & (vy > 0)
    return float(np.mean(cov[ok] / np.sqrt(vx[ok] * vy[ok]))) if ok.any() else float("nan")
