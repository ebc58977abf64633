from __future__ import annotations

import numpy as np
import pytest

from alstm.model import ALSTM
from tests.model.conftest import FAST, FakeDataset


def test_attention_weights_of_a_fitted_model(dataset: FakeDataset) -> None:
    model = ALSTM(**{**FAST, "n_epochs": 1}).fit(dataset)
    weights, index = model.attention(dataset, "test")
    n = len(dataset.samples("test"))
    assert weights.shape == (n, 5) and weights.dtype == np.float32
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    assert index.equals(dataset.samples("test").index)
    sub, sub_index = model.attention(dataset, "test", max_samples=10)
    assert sub.shape == (10, 5) and len(sub_index) == 10
    np.testing.assert_allclose(sub[0], weights[0], rtol=1e-6)
    np.testing.assert_allclose(sub[-1], weights[-1], rtol=1e-6)


def test_attention_needs_a_fitted_model(dataset: FakeDataset) -> None:
    with pytest.raises(ValueError, match="not fitted"):
        ALSTM(**FAST).attention(dataset)
