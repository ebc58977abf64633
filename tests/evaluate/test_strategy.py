"""TopkDropout selection on hand-made days, including Qlib's slicing quirks."""

from __future__ import annotations

import numpy as np
import pytest

from alstm.evaluate import TopkDropout

NAN = np.nan
# Columns 0..5 with scores; column 5 has no prediction row today.
SCORE = np.array([0.6, 0.5, 0.4, 0.3, NAN, NAN])
SCORED = np.array([True, True, True, True, True, False])
ALL = np.ones(6, dtype=bool)


def held(*cols: int) -> np.ndarray:
    mask = np.zeros(6, dtype=bool)
    mask[list(cols)] = True
    return mask


def select(strategy: TopkDropout, h: np.ndarray, tradable: np.ndarray = ALL):
    sell, buy = strategy.select(SCORE, SCORED, h, tradable)
    return sorted(sell.tolist()), buy.tolist()


def test_empty_book_buys_the_top() -> None:
    assert select(TopkDropout(topk=2, n_drop=1), held()) == ([], [0, 1])


def test_swaps_worst_held_for_best_new() -> None:
    # Held {2, 3}; new candidates 0, 1 (n_drop + topk − 2 = 1 → just 0); comb = [0, 2, 3] → sell 3.
    assert select(TopkDropout(topk=2, n_drop=1), held(2, 3)) == ([3], [0])


def test_nan_and_unscored_holdings_rank_last() -> None:
    # Held {0, 4 (NaN score), 5 (no row)}: the n_drop=2 worst of comb are 4 and 5.
    sell, buy = select(TopkDropout(topk=3, n_drop=2), held(0, 4, 5))
    assert sell == [4, 5]
    assert buy == [1, 2]


def test_keeps_holdings_better_than_candidates() -> None:
    # Held {0, 1} are better than every candidate: the worst of comb is a candidate, nothing sold.
    assert select(TopkDropout(topk=2, n_drop=1), held(0, 1)) == ([], [])


def test_n_drop_zero_sells_everything() -> None:
    # Qlib slices comb[-0:], i.e. the whole list: every holding is a sell candidate.
    assert select(TopkDropout(topk=3, n_drop=0), held(0, 1)) == ([0, 1], [2])


def test_more_holdings_than_topk_plus_n_drop() -> None:
    # |held| = 5 > topk + n_drop = 3: Qlib's candidates[:−2] keeps all but the last two candidates.
    sell, buy = select(TopkDropout(topk=2, n_drop=1), held(1, 2, 3, 4, 5))
    assert buy == []
    assert sell == [5]  # the last of comb (no row: after the NaN score of 4)


def test_only_tradable_skips_untradable() -> None:
    tradable = np.array([False, True, True, True, True, True])
    assert select(TopkDropout(topk=2, n_drop=1, only_tradable=True), held(), tradable) == (
        [],
        [1, 2],
    )
    # With n ≤ 0 Qlib's loop still returns the first tradable candidate.
    s = TopkDropout(topk=1, n_drop=0, only_tradable=True)
    _, buy = s.select(SCORE, SCORED, held(2, 3), tradable)
    assert buy.tolist() == []  # buy = today[: |sell| + topk − |held|] with |sell| = 1 → today[:0]


def test_random_methods_are_seeded() -> None:
    s = TopkDropout(topk=2, n_drop=1, method_buy="random", method_sell="random", seed=3)
    a = s.select(SCORE, SCORED, held(2, 3), ALL, np.random.default_rng(3))
    b = s.select(SCORE, SCORED, held(2, 3), ALL, np.random.default_rng(3))
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    sell, buy = a
    assert len(sell) == 1 and set(sell) <= {2, 3}
    assert set(buy) <= {0, 1}


@pytest.mark.parametrize(
    "kwargs",
    [{"topk": 0}, {"n_drop": -1}, {"method_sell": "worst"}, {"method_buy": "best"}],
)
def test_rejects_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        TopkDropout(**kwargs)
