"""ALSTM: parameters, registry, loss/metrics, early stopping, training, prediction, bad input."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import torch

import alstm.model.alstm as alstm_module
from alstm.model import ALSTM, get_model, model_names, register_model
from alstm.model.metrics import masked_mse, mean_daily_ic
from alstm.model.net import ALSTMNet
from alstm.model.stopping import EarlyStopping
from tests.model.conftest import FAST, FakeDataset, FakeSamples, make_dataset


def fitted(dataset: FakeDataset, **overrides: object) -> ALSTM:
    return ALSTM(**{**FAST, **overrides}).fit(dataset)


# ------------------------------------------------------------------------ parameters, registry
def test_parameters_are_stored_unchanged_and_repr_round_trips() -> None:
    model = ALSTM(d_feat=20, metric="", optimizer="Adam", GPU=0, n_jobs=20, rnn_type="gru")
    params = model.get_params()
    assert params["optimizer"] == "Adam" and params["rnn_type"] == "gru" and params["GPU"] == 0
    assert not hasattr(model, "net_")
    assert eval(repr(model)).get_params() == params
    assert repr(ALSTM()) == "ALSTM()"


def test_registry() -> None:
    assert get_model("ALSTM") is ALSTM
    assert "ALSTM" in model_names()
    with pytest.raises(KeyError, match=r"unknown model 'GATs'; known models: .*ALSTM"):
        get_model("GATs")
    with pytest.raises(ValueError, match="already registered"):
        register_model("ALSTM")(type("Other", (), {}))


# ---------------------------------------------------------------------------- loss, metrics
def test_masked_mse_ignores_nan_labels() -> None:
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    label = torch.tensor([0.0, float("nan"), 1.0, float("inf")])
    loss = masked_mse(pred, label)
    assert loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    assert torch.equal(pred.grad, torch.tensor([1.0, 0.0, 2.0, 0.0]))
    weighted = masked_mse(pred, label, torch.tensor([2.0, 5.0, 0.0, 1.0]))
    assert weighted.item() == pytest.approx(2 * 1 / 2)
    assert math.isnan(masked_mse(pred, torch.full((4,), float("nan"))).item())


def test_mean_daily_ic_by_hand() -> None:
    pred = np.array([1, 2, 3, 1, 2, 3, 5], np.float32)
    label = np.array([1, 2, 4, 3, 2, np.nan, 1], np.float32)
    dates = np.array([0, 0, 0, 1, 1, 1, 2])
    day0 = np.corrcoef([1, 2, 3], [1, 2, 4])[0, 1]
    # day 1 keeps 2 samples (corr −1); day 2 has one sample and is skipped
    assert mean_daily_ic(pred, label, dates) == pytest.approx((day0 - 1) / 2)
    assert math.isnan(mean_daily_ic(pred[:1], label[:1], dates[:1]))


# ------------------------------------------------------------------------- early stopping
def test_early_stopping_on_a_scripted_sequence() -> None:
    net = torch.nn.Linear(1, 1)
    stopper = EarlyStopping(patience=2)
    scores = [0.1, 0.3, float("nan"), 0.3, 0.5, 0.4, 0.45, 0.6]
    stops = [stopper.update(e, s, net) for e, s in enumerate(scores[:7])]
    # nan and an equal score do not improve: stop after 2 epochs without improvement
    assert stops == [False, False, False, True, False, False, True]
    assert stopper.best_epoch == 4 and stopper.best_score == 0.5


def test_fit_stops_at_the_right_epoch_and_restores_the_best_weights(
    dataset: FakeDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    valid_scores = iter([-3.0, -1.0, -2.0, -1.5, -1.0, -0.5])
    snapshots = []

    def scripted(net, batches, metric, tick=None, parts=1):
        if batches.segment == "train":
            return 0.0
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        return next(valid_scores)

    monkeypatch.setattr(alstm_module, "evaluate", scripted)
    evals: dict[str, list[float]] = {}
    model = ALSTM(**{**FAST, "n_epochs": 10, "early_stop": 3}).fit(dataset, evals_result=evals)
    assert evals["valid"] == [-3.0, -1.0, -2.0, -1.5, -1.0]  # best at epoch 1, 3 more epochs
    assert evals["train"] == [0.0] * 5
    assert model.best_epoch_ == 1
    for key, value in model.net_.state_dict().items():
        assert torch.equal(value, snapshots[1][key])
    assert not torch.equal(snapshots[1]["head.weight"], snapshots[4]["head.weight"])


def test_all_nan_valid_scores_are_an_error(dataset: FakeDataset) -> None:
    valid = dataset.sets["valid"]
    dataset.sets["valid"] = FakeSamples(valid.x, np.full_like(valid.y, np.nan), valid.index)
    with pytest.raises(ValueError, match="no epoch gave a finite valid score"):
        fitted(dataset, n_epochs=2)


# ------------------------------------------------------------------------------- training
def test_learns_a_learnable_problem() -> None:
    dataset = make_dataset(seed=1)
    evals: dict[str, list[float]] = {}
    model = ALSTM(**{**FAST, "n_epochs": 20, "hidden_size": 16}).fit(dataset, evals_result=evals)
    pred = model.predict(dataset)
    test = dataset.sets["test"]
    codes = pd.factorize(test.index.get_level_values(0))[0]
    assert mean_daily_ic(pred.to_numpy(), test.y, codes) > 0.5
    assert evals["valid"][model.best_epoch_] == max(evals["valid"])
    assert evals["valid"][-1] > evals["valid"][0]


def test_score_train_off_skips_the_train_pass_only(
    dataset: FakeDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored: list[str] = []
    evaluate = alstm_module.evaluate

    def recording(net, batches, metric, tick=None, parts=1):
        scored.append(batches.segment)
        return evaluate(net, batches, metric, tick, parts)

    monkeypatch.setattr(alstm_module, "evaluate", recording)
    on: dict[str, list[float]] = {}
    off: dict[str, list[float]] = {}
    with_train = ALSTM(**{**FAST, "n_epochs": 3}).fit(dataset, evals_result=on)
    assert scored == ["train", "valid"] * 3
    scored.clear()
    without = ALSTM(**{**FAST, "n_epochs": 3, "score_train": False}).fit(dataset, evals_result=off)
    assert scored == ["valid"] * 3
    assert off["train"] == [] and len(on["train"]) == 3
    assert off["valid"] == on["valid"] and off["train_loss"] == on["train_loss"]
    assert len(on["train_loss"]) == 3 and all(v > 0 for v in on["train_loss"])
    np.testing.assert_array_equal(without.predict(dataset), with_train.predict(dataset))
    with pytest.raises(ValueError, match="score_train='no': must be true or false"):
        fitted(dataset, score_train="no")


def test_metric_ic_scores_by_daily_ic(dataset: FakeDataset) -> None:
    evals: dict[str, list[float]] = {}
    ALSTM(**{**FAST, "metric": "ic", "n_epochs": 4}).fit(dataset, evals_result=evals)
    assert all(-1 <= s <= 1 for s in evals["valid"])
    assert evals["valid"][-1] > 0.2


def test_nan_labels_are_masked_in_training(dataset: FakeDataset) -> None:
    train = dataset.sets["train"]
    y = train.y.copy()
    y[::3] = np.nan
    dataset.sets["train"] = FakeSamples(train.x, y, train.index)
    model = fitted(dataset)
    assert all(torch.isfinite(p).all() for p in model.net_.parameters())
    assert np.isfinite(model.evals_result_["train"]).all()


def test_zero_sample_weights_leave_the_initial_weights(dataset: FakeDataset) -> None:
    n = len(dataset.sets["train"])
    model = ALSTM(**FAST).fit(dataset, sample_weight=np.zeros(n))
    torch.manual_seed(FAST["seed"])
    initial = model._build_net().state_dict()
    for key, value in model.net_.state_dict().items():
        assert torch.equal(value, initial[key])


def test_same_seed_same_predictions_other_seed_other_predictions(dataset: FakeDataset) -> None:
    a = fitted(dataset, dropout=0.2).predict(dataset)
    b = fitted(dataset, dropout=0.2).predict(dataset)
    c = fitted(dataset, dropout=0.2, seed=1).predict(dataset)
    assert np.array_equal(a.to_numpy(), b.to_numpy())
    assert not np.array_equal(a.to_numpy(), c.to_numpy())


def test_fit_leaves_global_torch_state_alone(dataset: FakeDataset) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fitted(dataset, n_epochs=1, n_threads=1)
    assert torch.equal(torch.rand(3), expected)
    assert not torch.are_deterministic_algorithms_enabled()


def test_predict_keeps_every_row_in_sample_order(dataset: FakeDataset) -> None:
    model = fitted(dataset, n_epochs=1, batch_size=100)
    test = dataset.sets["test"]
    order = np.random.default_rng(0).permutation(len(test))  # an unsorted sample order
    shuffled = FakeSamples(test.x[order], test.y[order], test.index[order])
    pred = model.predict(FakeDataset({"test": shuffled}))
    assert pred.name == "score" and pred.dtype == np.float32
    assert len(pred) == len(test) == 240  # 2 full batches + a partial one
    assert pred.index.equals(test.index[order])
    full = model.predict(dataset)
    assert np.allclose(pred.to_numpy(), full.to_numpy()[order], atol=1e-6)


def test_predict_before_fit_is_an_error(dataset: FakeDataset) -> None:
    with pytest.raises(ValueError, match="not fitted"):
        ALSTM(**FAST).predict(dataset)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("name", "value", "valid"),
    [
        ("rnn_type", "RNN", "'GRU', 'LSTM'"),
        ("loss", "mae", "'mse'"),
        ("optimizer", "rmsprop", "'adam', 'gd'"),
        ("metric", "rank_ic", "'loss', 'ic', ''"),
        ("precision", "float16", "'float32', 'bfloat16'"),
    ],
)
def test_unknown_choices_list_the_valid_ones(
    dataset: FakeDataset, name: str, value: str, valid: str
) -> None:
    with pytest.raises(ValueError, match=f"unknown {name} '{value}'; valid: {valid}"):
        ALSTM(**{**FAST, name: value}).fit(dataset)


@pytest.mark.parametrize(("setting", "value"), [("rnn_type", "LSTM"), ("dropout", 0.1)])
def test_bfloat16_needs_a_gru_without_dropout(
    dataset: FakeDataset, setting: str, value: object
) -> None:
    with pytest.raises(ValueError, match="'bfloat16' needs rnn_type='GRU' and no dropout"):
        fitted(dataset, precision="bfloat16", **{setting: value})


def test_bfloat16_trains_its_own_run_as_well(dataset: FakeDataset) -> None:
    """Not float32's run (the rounding changes the path) but as good a fit, reproducibly."""
    test = dataset.samples("test")
    codes = pd.factorize(test.index.get_level_values(0))[0]
    runs = {p: fitted(dataset, precision=p, n_epochs=4) for p in ("float32", "bfloat16")}
    preds = {p: m.predict(dataset).to_numpy() for p, m in runs.items()}
    assert not np.allclose(preds["float32"], preds["bfloat16"], rtol=0, atol=1e-6)
    ics = {p: mean_daily_ic(v, test.y, codes) for p, v in preds.items()}
    assert ics["bfloat16"] > 0.5 and abs(ics["bfloat16"] - ics["float32"]) < 0.05
    again = fitted(dataset, precision="bfloat16", n_epochs=4).predict(dataset).to_numpy()
    np.testing.assert_array_equal(again, preds["bfloat16"])


@pytest.mark.parametrize("segment", ["train", "valid"])
def test_empty_segment_is_named_with_its_dates(dataset: FakeDataset, segment: str) -> None:
    s = dataset.sets[segment]
    dataset.sets[segment] = FakeSamples(s.x[:0], s.y[:0], s.index[:0])
    lo, hi = (d.date() for d in dataset.segments[segment])
    message = rf"the {segment} segment \({lo} \.\. {hi}\) has no samples"
    with pytest.raises(ValueError, match=message):
        fitted(dataset)


def test_too_few_samples_for_one_batch(dataset: FakeDataset) -> None:
    with pytest.raises(ValueError, match="valid segment has 240 samples, fewer than batch_size"):
        fitted(dataset, batch_size=500)


def test_d_feat_mismatch_names_both_numbers(dataset: FakeDataset) -> None:
    with pytest.raises(ValueError, match="d_feat=6 but the train samples have 3 features"):
        fitted(dataset, d_feat=6)


def test_nan_features_name_the_column_unless_filled(dataset: FakeDataset) -> None:
    train = dataset.sets["train"]
    x = train.x.copy()
    x[5, 2, 1] = np.nan
    x[9, 0, 1] = np.inf
    dataset.sets["train"] = FakeSamples(x, train.y, train.index)
    with pytest.raises(ValueError, match="train features contain NaN/inf at feature column 1"):
        fitted(dataset, n_epochs=1)
    model = fitted(dataset, n_epochs=1, fill_nan=0.0)
    assert all(torch.isfinite(p).all() for p in model.net_.parameters())


def test_bad_sizes_and_weights(dataset: FakeDataset) -> None:
    with pytest.raises(ValueError, match="n_epochs=0: must be an integer >= 1"):
        fitted(dataset, n_epochs=0)
    with pytest.raises(ValueError, match=r"sample_weight has shape \(3,\); expected \(720,\)"):
        ALSTM(**FAST).fit(dataset, sample_weight=np.ones(3))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_absent_gpu_warns_and_uses_the_cpu(dataset: FakeDataset) -> None:
    with pytest.warns(UserWarning, match="cuda:0 was asked for but is not available"):
        model = fitted(dataset, n_epochs=1, device=None, GPU=0)
    assert model.device_ == torch.device("cpu")
    assert fitted(dataset, n_epochs=1, device=None, GPU=None).device_.type == "cpu"


@pytest.mark.parametrize("optimizer", ["adam", "gd"])
def test_optimizer_steps_equal_torchs_default_bit_for_bit(optimizer: str) -> None:
    def trained(build: Callable[[ALSTMNet], torch.optim.Optimizer]) -> list[torch.Tensor]:
        torch.manual_seed(0)
        net = ALSTMNet(d_feat=3, hidden_size=8)
        opt = build(net)
        gen = torch.Generator().manual_seed(1)
        for _ in range(20):
            for p in net.parameters():
                p.grad = torch.randn(p.shape, generator=gen)
            opt.step()
        return [p.detach() for p in net.parameters()]

    model = ALSTM(**{**FAST, "optimizer": optimizer})
    default = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    ours = trained(model._build_optimizer)
    theirs = trained(lambda net: default(net.parameters(), lr=model.lr))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
