"""The run context the train, evaluate and explain stages share, on the real MLflow SQLite store."""

import pytest

from visionlab.tracking import RUN_RECORD, finishing, open_run, start_run


class _Interrupted(BaseException):
    """Not an Exception: a Ctrl-C or a kill must fail the run too."""


def _status(run) -> str:
    return run.client.get_run(run.run_id).info.status


def test_finishing_marks_the_run_finished_or_failed_and_lets_the_error_through(in_tmp, monkeypatch):
    # One store for the three cases: creating an MLflow SQLite store costs seconds.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with finishing(start_run("toyset", "toy-exp")) as run:
        run.log_metrics({"accuracy": 0.5})
        run.record(in_tmp / RUN_RECORD)
        assert _status(run) == "RUNNING"
    assert _status(run) == "FINISHED"

    # A later stage reopens the recorded run; its failure marks the run failed.
    with pytest.raises(ValueError), finishing(open_run(in_tmp / RUN_RECORD, "toyset", "toy-exp")) as again:
        assert again.run_id == run.run_id
        assert _status(again) == "RUNNING"
        raise ValueError("evaluation failed")
    assert _status(run) == "FAILED"

    with pytest.raises(_Interrupted), finishing(start_run("toyset", "other-exp")) as killed:
        raise _Interrupted
    assert _status(killed) == "FAILED"


def test_a_resumed_run_is_continued_once_and_an_abandoned_one_is_marked_killed(in_tmp, monkeypatch):
    from visionlab.tracking.resumable import abandon_runs, resumable_run

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder = in_tmp / "data/.resume/toy-exp-0123456789abcdef"
    first = resumable_run(folder, "toyset", "toy-exp", "loss")
    first.log_params({"train": {"lr": 0.1, "device": "cuda"}})
    first.log_epoch({"loss": 1.0}, step=1)
    # Killed here (no finish); the rerun with the same resume folder continues the same run.
    again = resumable_run(folder, "toyset", "toy-exp", "loss")
    assert again.run_id == first.run_id and _status(again) == "RUNNING"
    again.log_params({"train": {"lr": 0.1, "device": "cpu", "seed": 3}})  # MLflow would refuse the new device
    for step in (1, 2):  # the replayed epoch 1, then a new one
        again.log_epoch({"loss": 1.0 / step}, step=step)
    stored = again.client.get_run(again.run_id)
    assert stored.data.params == {"train.lr": "0.1", "train.device": "cuda", "train.seed": "3"}
    assert stored.data.tags["visionlab.changed_on_resume"] == "train.device"
    assert [m.step for m in again.client.get_metric_history(again.run_id, "loss")] == [1, 2]

    # Checkpoints that will never be resumed: their run stops looking alive; a finished one is left.
    assert abandon_runs([folder, in_tmp / "no-such-folder"]) == [again.run_id]
    assert _status(again) == "KILLED"
    again.finish(True)
    assert abandon_runs([folder]) == []
    assert _status(again) == "FINISHED"
