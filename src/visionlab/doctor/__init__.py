"""``visionlab doctor``'s checks: machine, project, params, MLflow store, weights, DVC's leftovers.

Each check returns one :class:`Check` line with its fix; the command in :mod:`visionlab.cli`
prints them. It looks at the whole installation, so like the command line it sits above every
other part of the library.
"""

from __future__ import annotations

from pathlib import Path

from visionlab.doctor.check import FAIL, OK, WARN, Check
from visionlab.doctor.dvc_state import _check_dvc_locks, _check_queue_workers
from visionlab.doctor.machine import _check_chromium, _check_disk, _check_git, _check_gpu, _check_uv
from visionlab.doctor.project import (
    _check_dvc,
    _check_effnet,
    _check_folders,
    _check_params,
    _check_weights,
)
from visionlab.doctor.store import _check_mlflow

__all__ = ["FAIL", "OK", "WARN", "Check", "doctor_checks"]


def doctor_checks(root: Path) -> list[Check]:
    """Every check, in the order a new user would fix them."""
    checks = [check(root) for check in (_check_uv, _check_git, _check_dvc, _check_dvc_locks)]
    checks.append(_check_queue_workers(root))
    params_check, params = _check_params(root)
    checks.append(params_check)
    checks.append(_check_mlflow(root))
    if params is not None:
        checks += _check_folders(params)
        checks += _check_weights(params)
    checks += [_check_effnet(params, f"efficientnet_lite{n}") for n in range(3)]
    checks += [_check_gpu(root), _check_disk(root), _check_chromium(root)]
    return checks
