"""Sample sets: TS windows exactly as Qlib's TSDataSampler builds them, and flat Alpha360 rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alstm.dataset import FlatSamples, Frame, WindowSamples, make_processor
from tests.dataset.conftest import DAYS, frame_from, random_frame


def sampler_oracle(
    frame: Frame, start: object, end: object, step_len: int, fillna_type: str
) -> tuple[list[tuple[pd.Timestamp, str]], np.ndarray]:
    """TSDataSampler's rules written out plainly: a (date × instrument) grid of row numbers of
    the frame, windows of the last ``step_len`` grid rows (left-padded), the row numbers
    forward/back filled, samples instrument by instrument."""
    values = frame.to_frame().to_numpy(np.float64)
    grid = pd.Series(np.arange(len(frame)), index=frame.index).unstack("instrument")
    dates = grid.index
    in_segment = (dates >= pd.Timestamp(start)) & (dates <= pd.Timestamp(end))
    keys, windows = [], []
    for inst in grid.columns:
        col = grid[inst].to_numpy(np.float64)
        for r in np.flatnonzero(in_segment & ~np.isnan(col)):
            idx = col[max(0, r - step_len + 1) : r + 1]
            idx = pd.Series(np.concatenate([np.full(step_len - len(idx), np.nan), idx]))
            if fillna_type != "none":
                idx = idx.ffill()
            if fillna_type == "ffill+bfill":
                idx = idx.bfill()
            nan_row = np.full(values.shape[1], np.nan)
            windows.append([nan_row if np.isnan(i) else values[int(i)] for i in idx])
            keys.append((dates[r], inst))
    return keys, np.array(windows)


def f0_windows(samples: WindowSamples, keys: list[tuple[int, str]]) -> list[list[float]]:
    """Feature f0 of the windows of the samples at (day number, instrument)."""
    pos = [samples.index.get_loc((DAYS[t], inst)) for t, inst in keys]
    return samples.gather(np.array(pos))[0][:, :, 0].tolist()


@pytest.mark.parametrize("fillna_type", ["none", "ffill", "ffill+bfill"])
@pytest.mark.parametrize("step_len", [1, 3, 7])
def test_windows_equal_the_sampler_rules(fillna_type: str, step_len: int) -> None:
    frame = make_processor("DropnaLabel").transform(random_frame(9))
    start, end = "2019-06-20", "2019-07-19"
    samples = WindowSamples.from_frame(frame, start, end, step_len, fillna_type)
    keys, want = sampler_oracle(frame, start, end, step_len, fillna_type)
    assert list(samples.index) == keys
    x, y = samples.gather(np.arange(len(samples)))
    assert x.shape == (len(keys), step_len, 3) and x.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_array_equal(x, want[:, :, :-1].astype(np.float32))
    np.testing.assert_array_equal(y, want[:, -1, -1].astype(np.float32))


def test_hand_checked_windows(toy: Frame) -> None:
    samples = WindowSamples.from_frame(toy, DAYS[0], DAYS[7], 3, "ffill+bfill")
    # instrument-major order: A d0-d7, B d4-d7, C d0-d7, D without d3-d4
    assert len(samples) == 8 + 4 + 8 + 6
    assert samples.index[8] == (DAYS[4], "B")
    assert f0_windows(samples, [(0, "A")]) == [[0, 0, 0]]  # left padding back-filled
    assert f0_windows(samples, [(4, "B")]) == [[41, 41, 41]]  # listed on d4
    # D is missing on d3-d4: the fill never reaches outside the window (d2)
    assert f0_windows(samples, [(5, "D"), (6, "D")]) == [[53, 53, 53], [53, 53, 63]]
    # a suspended row that exists (I) is a row of NaN, not a hole
    assert np.isnan(f0_windows(samples, [(3, "C")])[0][1:]).all()
    _, y = samples.gather(np.array([samples.index.get_loc((DAYS[5], "D"))]))
    assert y.tolist() == [305.0]  # the label of the sample's own row
    ffill = WindowSamples.from_frame(toy, DAYS[0], DAYS[7], 3, "ffill")
    assert np.isnan(f0_windows(ffill, [(5, "D")])[0][:2]).all()
    none = WindowSamples.from_frame(toy, DAYS[0], DAYS[7], 3, "none")
    assert f0_windows(none, [(6, "D")])[0][1:] == [53, 63]


def test_rows_dropped_by_dropna_label_are_holes(toy: Frame) -> None:
    learn = make_processor("DropnaLabel").transform(toy)  # drops C's d2, d3
    samples = WindowSamples.from_frame(learn, DAYS[0], DAYS[7], 4, "ffill+bfill")
    assert (DAYS[2], "C") not in samples.index
    # holes take the previous row of the window, or its first row when none precedes them
    assert f0_windows(samples, [(4, "C"), (5, "C")]) == [[12, 12, 12, 42], [42, 42, 42, 52]]
    assert f0_windows(samples, [(2, "A")]) == [[0, 0, 10, 20]]


def test_grid_dates_are_the_fetched_frames_dates() -> None:
    # no row at all on d1 (every label NaN, dropped): the grid skips the date entirely
    recs = [(DAYS[t], i, [10.0 * t], np.nan if t == 1 else 0.0) for t in range(4) for i in "AB"]
    learn = make_processor("DropnaLabel").transform(frame_from(recs))
    samples = WindowSamples.from_frame(learn, DAYS[0], DAYS[3], 2, "none")
    assert f0_windows(samples, [(2, "A")]) == [[0, 20]]


def test_segment_start_uses_earlier_rows_as_history(toy: Frame) -> None:
    samples = WindowSamples.from_frame(toy, DAYS[6], DAYS[7], 3, "ffill+bfill")
    assert len(samples) == 8 and samples.index[0] == (DAYS[6], "A")
    assert f0_windows(samples, [(6, "A")]) == [[40, 50, 60]]


def test_flat_rows_become_oldest_first_sequences() -> None:
    fields = ["CLOSE", "OPEN", "HIGH", "LOW", "VWAP", "VOLUME"]
    names = [f"{f}{lag}" for f in fields for lag in (2, 1, 0)]  # Alpha360's layout, 3 lags
    values = [10.0 * k + lag for k in range(6) for lag in (2, 1, 0)]
    frame = frame_from([(DAYS[0], "A", values, 0.5)]).replace({}, {"feature": tuple(names)})
    samples = FlatSamples.from_frame(frame, n_features=6)
    assert (samples.step_len, samples.n_features, samples.d_feat) == (3, 6, 6)
    x, y = samples.gather(np.array([0]))
    assert x.shape == (1, 3, 6) and x.flags.c_contiguous and y.tolist() == [0.5]
    # step 0 = the oldest lag; features close, open, high, low, vwap, volume
    assert x[0].tolist() == [[10.0 * k + lag for k in range(6)] for lag in (2, 1, 0)]


def test_bad_sample_requests() -> None:
    frame = random_frame(0)
    with pytest.raises(ValueError, match="step_len=0: must be an integer >= 1"):
        WindowSamples.from_frame(frame, None, None, 0, "none")
    with pytest.raises(ValueError, match="fillna_type='bfill'"):
        WindowSamples.from_frame(frame, None, None, 2, "bfill")
    with pytest.raises(ValueError, match="d_feat=2: must divide the 3"):
        FlatSamples.from_frame(frame, n_features=2)
    samples = WindowSamples.from_frame(frame, None, None, 2, "none")
    with pytest.raises(IndexError, match=rf"\[0, {len(samples)}\)"):
        samples.gather(np.array([len(samples)]))
    x, y = samples.gather(np.array([], np.int64))
    assert x.shape == (0, 2, 3) and y.shape == (0,)
