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
