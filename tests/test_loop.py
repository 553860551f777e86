import itertools

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
    # What the train stage saves and says of it: the head's weights, and why.
    kept = _trained(net, [first, second])
    assert kept.best_phase == "head" and kept.best_epoch == first.best_epoch
    said = kept.unimproved()
    assert said and f"epochs {first.best_epoch + 1}-{first.best_epoch + 3}" in said
    assert f"{first.best_loss:.4f} at epoch {first.best_epoch}" in said and "keeps the head" in said
    assert _trained(net, [first]).unimproved() is None  # one phase: nothing to compare


def test_a_second_phase_that_beats_the_first_is_the_one_kept():
    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    train, val = _data(128, 0, False), _data(64, 1, False)
    settings = TrainParams(epochs=1, lr=0.001, early_stopping_patience=0, amp="off")
    first = fit(net, train, val, settings, torch.device("cpu"), Phase("head"))
    second = fit(
        net,
        train,
        val,
        TrainParams(epochs=5, lr=0.05, early_stopping_patience=0, amp="off"),
        torch.device("cpu"),
        Phase("finetune", first_epoch=2, best_so_far=(first.best_loss, first.best_epoch)),
    )
    kept = _trained(net, [first, second])
    assert kept.best_epoch > 1 and kept.best_phase == "finetune" and kept.unimproved() is None


def _trained(net, phases):
    from visionlab.training.outputs import TrainedModel

    return TrainedModel(net, phases, torch.device("cpu"), False, False, "images", 0.0)


def test_cosine_batch_anneals_every_step_to_min_lr_at_the_last_batch(monkeypatch):
    """Stepped once an epoch, the last epoch trains at the rate before the last step; per batch,
    the rate falls within each epoch and the last batch trains at about min_lr."""

    def lrs(schedule: str) -> tuple[list[float], list[float]]:
        torch.manual_seed(0)
        net = nn.Linear(4, 2)
        used: list[float] = []
        settings = TrainParams(epochs=2, lr=0.1, min_lr=0.0, schedule=schedule, early_stopping_patience=0)
        original = torch.optim.Adam.step

        def spy(self, *args, **kwargs):
            used.append(self.param_groups[0]["lr"])
            return original(self, *args, **kwargs)

        with monkeypatch.context() as patched:
            patched.setattr(torch.optim.Adam, "step", spy)
            result = fit(net, _data(128, 0, False), _data(32, 1, False), settings, torch.device("cpu"))
        return used, [row["lr"] for row in result.history]

    per_epoch, _ = lrs("cosine")
    per_batch, history = lrs("cosine_batch")
    assert len(per_batch) == len(per_epoch) == 16  # 128 images in batches of 16, two epochs
    assert len(set(per_epoch)) == 2  # two rates, one per epoch
    assert all(a > b for a, b in itertools.pairwise(per_batch))  # falls every step
    assert per_batch[0] == 0.1 and per_batch[-1] < 0.01 < per_epoch[-1]
    assert history[-1] < 1e-9  # at min_lr once the last step is taken


def test_a_cosine_batch_run_stopped_after_an_epoch_resumes_to_the_same_weights(tmp_path):
    """The per-step schedule's position is saved with the epoch checkpoint and restored."""
    import pytest

    from visionlab.training.phase import RunHooks

    settings = TrainParams(epochs=4, lr=0.05, schedule="cosine_batch", early_stopping_patience=0, amp="off")

    def trained(checkpoint, hooks):
        torch.manual_seed(0)
        net = nn.Linear(4, 2)
        phase = Phase(checkpoint=checkpoint)
        result = fit(
            net, _data(64, 0, False), _data(32, 1, False), settings, torch.device("cpu"), phase, hooks
        )
        return net, result

    def crash_after_two(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt  # after the epoch's checkpoint was written

    checkpoint = tmp_path / "resume.pt"
    with pytest.raises(KeyboardInterrupt):
        trained(checkpoint, RunHooks(on_epoch=crash_after_two, checkpoint_key="k"))
    resumed, result = trained(checkpoint, RunHooks(checkpoint_key="k"))
    straight, _ = trained(None, RunHooks(checkpoint_key="k"))
    assert result.resumed_from == 2
    for name, tensor in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), name
