import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from visionlab.params import TrainParams
from visionlab.training.loop import HISTORY_COLUMNS, fit
from visionlab.training.phase import Phase


def _data(n, seed, noise):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long()
    if noise:
        y = torch.randint(0, 2, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=16)


def test_learns_and_records_history():
    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    settings = TrainParams(epochs=15, lr=0.05, early_stopping_patience=20)
    result = fit(net, _data(128, 0, False), _data(64, 1, False), settings, torch.device("cpu"))
    assert list(result.history[0]) == HISTORY_COLUMNS
    assert result.history[-1]["val_accuracy"] > 0.9
    assert result.samples_seen == 15 * 128


def test_early_stopping_restores_the_best_epoch():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 2))
    # float32 (amp off): the check below compares losses to 1e-5, finer than bfloat16 resolves.
    settings = TrainParams(epochs=60, lr=0.05, early_stopping_patience=2, lr_plateau_patience=10, amp="off")
    result = fit(net, _data(64, 0, True), _data(64, 1, True), settings, torch.device("cpu"))
    assert result.stopped_early and len(result.history) < 60
    assert len(result.history) == result.best_epoch + 2
    best_val = min(r["val_loss"] for r in result.history)
    assert result.history[result.best_epoch - 1]["val_loss"] == best_val
    x, y = _data(64, 1, True).dataset.tensors
    net.eval()
    final = nn.functional.cross_entropy(net(x), y).item()
    assert abs(final - best_val) < 1e-5  # weights were put back to the best epoch


def test_divergence_is_an_error_not_a_saved_model():
    import pytest

    from visionlab.errors import VisionlabError

    x = torch.full((32, 4), float("nan"))
    batches = DataLoader(TensorDataset(x, torch.zeros(32, dtype=torch.long)), batch_size=16)
    with pytest.raises(VisionlabError, match="loss was never finite"):
        fit(nn.Linear(4, 2), batches, batches, TrainParams(epochs=2), torch.device("cpu"))


def test_a_second_phase_that_never_beats_the_first_keeps_the_first_phases_best():
    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    train, val = _data(128, 0, False), _data(64, 1, False)
    settings = TrainParams(epochs=8, lr=0.05, early_stopping_patience=0, amp="off")  # compared to 1e-5
    first = fit(net, train, val, settings, torch.device("cpu"), Phase("head"))
    # Random labels at a large learning rate only make things worse: no epoch beats phase one.
    second = fit(
        net,
        _data(128, 5, True),
        val,
        TrainParams(epochs=3, lr=5.0, early_stopping_patience=0, schedule="none", amp="off"),
        torch.device("cpu"),
        Phase("finetune", first_epoch=first.best_epoch + 1, best_so_far=(first.best_loss, first.best_epoch)),
    )
    assert min(r["val_loss"] for r in second.history) > first.best_loss
    assert (second.best_epoch, second.best_loss) == (first.best_epoch, first.best_loss)
    x, y = val.dataset.tensors
    final = nn.functional.cross_entropy(net(x), y).item()
    assert abs(final - first.best_loss) < 1e-5
