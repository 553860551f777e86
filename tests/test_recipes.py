"""Training recipes: named overrides of train, per-experiment tweaks, schedules, losses, penalties."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.conftest import minimal_params
from visionlab.errors import ParamsError
from visionlab.params import ModelParams, TrainParams, parse_params
from visionlab.training.loop import fit
from visionlab.training.phase import RunHooks
from visionlab.training.regularization import balanced_class_weights, l2_penalty, mix_batch


def _params(**experiment):
    raw = minimal_params(
        recipes={"default": {}, "slow": {"lr": 0.0001, "schedule": "cosine"}},
    )
    raw["train"] = {"epochs": 7}
    raw["experiments"]["toy-cnn"].update(experiment)
    return parse_params(raw)


def test_recipe_then_experiment_overrides_lay_over_train():
    params = _params(recipe="slow", train_overrides={"batch_size": 8})
    recipe = params.recipe_of("toy-cnn")
    assert (recipe.epochs, recipe.lr, recipe.schedule, recipe.batch_size) == (7, 0.0001, "cosine", 8)


def test_model_overrides_merge_into_nested_sections():
    raw = minimal_params()
    raw["models"]["vgg"] = {
        "arch": "vgg16",
        "weights": "imagenet",
        "base": "frozen",
        "augmented": False,
        "head": {"hidden": [512, 128], "dropout": 0.5},
    }
    raw["experiments"]["ladder"] = {
        "dataset": "toy",
        "model": "vgg",
        "recipe": "default",
        "model_overrides": {"head": {"dropout": 0.2}},
    }
    model = parse_params(raw).model_of("ladder")
    assert model.head.hidden == [512, 128] and model.head.dropout == 0.2


@pytest.mark.parametrize(
    ("experiment", "message"),
    [
        ({"recipe": "fast"}, "experiments.toy-cnn.recipe: unknown recipe 'fast'"),
        ({"train_overrides": {"lr": -1}}, "experiments.toy-cnn.train_overrides.lr: Input should be greater"),
        ({"train_overrides": {"lrr": 1}}, "experiments.toy-cnn.train_overrides.lrr: unknown key"),
        ({"model_overrides": {"arch": "vgg99"}}, "experiments.toy-cnn.model_overrides.arch: Input should be"),
        (
            {"train_overrides": {"mixup_alpha": -0.2}},
            "experiments.toy-cnn.train_overrides.mixup_alpha: Input should be greater",
        ),
    ],
)
def test_bad_overrides_name_their_key(experiment, message):
    with pytest.raises(ParamsError, match=message.replace(".", r"\.").replace("(", r"\(")):
        _params(**experiment)


def test_a_bad_recipe_names_its_key():
    raw = minimal_params(recipes={"default": {}, "broken": {"schedule": "linear"}})
    with pytest.raises(ParamsError, match=r"recipes\.broken\.schedule"):
        parse_params(raw)


def test_finetune_needs_a_layer_to_unfreeze_from():
    with pytest.raises(ValueError, match="unfreeze_from"):
        ModelParams(arch="resnet50", weights="imagenet", base="finetune", augmented=False)


def _batches(n=64, seed=0, noisy=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = torch.randint(0, 2, (n,), generator=g) if noisy else (x[:, 0] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=16)


def test_cosine_schedule_anneals_to_min_lr():
    settings = TrainParams(epochs=5, lr=0.1, schedule="cosine", min_lr=0.001, early_stopping_patience=0)
    result = fit(nn.Linear(4, 2), _batches(), _batches(seed=1), settings, torch.device("cpu"))
    lrs = [row["lr"] for row in result.history]
    assert lrs[0] == pytest.approx(0.1) and all(a > b for a, b in itertools.pairwise(lrs))
    assert len(result.history) == 5  # patience 0: never stops early


def test_reported_loss_is_plain_cross_entropy_whatever_the_recipe():
    """Label smoothing and class weights shape the objective, not the numbers compared across runs."""
    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    settings = TrainParams(
        epochs=1, lr=1e-9, label_smoothing=0.3, optimizer="sgd", momentum=0.0, amp="off"
    )  # float32: compared to 1e-5
    batches = _batches()
    x, y = batches.dataset.tensors
    expected = nn.functional.cross_entropy(net(x), y).item()
    weighted = RunHooks(class_weights=torch.tensor([5.0, 1.0]))
    result = fit(net, batches, batches, settings, torch.device("cpu"), hooks=weighted)
    assert result.history[0]["train_loss"] == pytest.approx(expected, abs=1e-5)


def test_mixup_blends_each_input_and_label_with_one_partner_by_one_share():
    x = torch.arange(24, dtype=torch.float32).reshape(6, 4)
    y = torch.arange(6)
    np.random.seed(0)
    torch.manual_seed(0)
    mixed = mix_batch(x, y, alpha=0.4)
    assert 0 < mixed.share < 1 and sorted(mixed.partners.tolist()) == list(range(6))  # a permutation
    partner = x[mixed.partners]  # label i is row i here, so the partners' labels index their rows
    assert torch.allclose(mixed.inputs, mixed.share * x + (1 - mixed.share) * partner)
    np.random.seed(0)
    torch.manual_seed(0)
    again = mix_batch(x, y, alpha=0.4)  # the global generators decide: a resumed run draws alike
    assert again.share == mixed.share and torch.equal(again.partners, mixed.partners)


def _fit_once(**settings) -> tuple[list[dict], dict]:
    np.random.seed(1)
    torch.manual_seed(1)
    net = nn.Linear(4, 2)
    train = TrainParams(epochs=2, lr=0.05, early_stopping_patience=0, amp="off", **settings)
    history = fit(net, _batches(noisy=True), _batches(seed=1), train, torch.device("cpu")).history
    return history, net.state_dict()


def test_mixup_changes_training_reproducibly_and_off_draws_nothing():
    plain, plain_state = _fit_once()
    np.random.seed(1)
    untouched = np.random.random()
    _fit_once()
    np.random.seed(1)
    assert np.random.random() == untouched  # never drawn with mixup off: earlier runs replay exactly
    mixed, mixed_state = _fit_once(mixup_alpha=0.4)
    again, again_state = _fit_once(mixup_alpha=0.4)
    assert [r["train_loss"] for r in mixed] == [r["train_loss"] for r in again]
    assert all(torch.equal(mixed_state[k], again_state[k]) for k in mixed_state)
    assert [r["train_loss"] for r in mixed] != [r["train_loss"] for r in plain]
    assert not torch.equal(mixed_state["weight"], plain_state["weight"])
    assert [r["val_loss"] for r in mixed] != [r["val_loss"] for r in plain]


def test_balanced_class_weights_match_scikit_learn():
    from sklearn.utils.class_weight import compute_class_weight

    labels = [0] * 30 + [1] * 10 + [2] * 5
    ours = balanced_class_weights(labels, 3)
    theirs = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=np.array(labels))
    assert torch.allclose(ours, torch.tensor(theirs, dtype=torch.float32))


class _TwoGroups(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.head = nn.Linear(2, 2)

    def l2_weights(self):
        return iter([self.conv.weight])

    def head_l2_weights(self):
        return iter([self.head.weight])


def test_l2_applies_each_groups_rate_to_its_trainable_kernels():
    model = _TwoGroups()
    spec = ModelParams(
        arch="resnet50", weights="imagenet", base="trainable", augmented=False, l2=0.1, head={"l2": 0.01}
    )
    expected = 0.1 * model.conv.weight.pow(2).sum() + 0.01 * model.head.weight.pow(2).sum()
    assert torch.allclose(l2_penalty(model, spec)(), expected)
    model.conv.weight.requires_grad_(False)  # a frozen kernel costs nothing and is not penalised
    assert torch.allclose(l2_penalty(model, spec)(), 0.01 * model.head.weight.pow(2).sum())


def test_an_epochs_cap_cuts_every_recipe_short_and_makes_a_quick_try():
    from pathlib import Path

    import yaml

    from visionlab.params.scale import quick_try

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    shipped = parse_params(raw)
    assert shipped.recipe_of("flowers-effnet").epochs == 60  # head_only
    raw["train"]["epochs_cap"] = 2
    capped = parse_params(raw)
    for name in capped.experiments:
        recipe = capped.recipe_of(name)
        assert recipe.epochs <= 2 and recipe.head_epochs <= 1, name
    best = capped.recipe_of("flowers-best")  # finetune: one head epoch, then one of fine-tuning
    assert (best.epochs, best.head_epochs) == (2, 1)
    assert quick_try(shipped, "flowers-effnet") is None
    assert "train.epochs_cap is 2" in quick_try(capped, "flowers-effnet")
    with pytest.raises(ParamsError, match=r"train\.epochs_cap"):
        parse_params({**raw, "train": {**raw["train"], "epochs_cap": 0}})
