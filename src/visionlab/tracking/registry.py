"""The MLflow model registry: each data set's best model under a stable name.

``visionlab-<dataset>`` gets a new version only when the best run changes, and the alias ``best``
points at the best model any report has seen, so ``models:/visionlab-flowers@best`` is what a
consumer loads. The best is chosen on **validation** accuracy (ties: the lower validation loss,
then the name), never on test: a model chosen by its test score would carry an upward-biased
test figure. Quick tries (a sample of the images, shrunk inputs: ``params/scale.py``) never
compete, so a debug run that scored 100% on ten images cannot displace a full-set model.

A report compares its workspace's experiments with the version the alias holds:
queued variants report from their own workspace copies, in any order, and one that finishes last
with a lesser model must not take the alias from a better one. When the held run is among the
candidates its fresh score counts (a rerun that got worse loses the alias); otherwise the score
tagged on its version does. To reset, delete the alias in the MLflow UI.

Where evaluate scored degraded copies of validation (``evaluate.robustness``), a second alias,
``robust``, points at the model whose worst degraded validation copy scores highest (ties: clean
validation accuracy) among those whose clean validation accuracy is within chance of the best one's
(at least the lower end of its 95% interval): the one to load for smaller, re-encoded photos, chosen
the same way, and never one that bought a degraded point with several clean ones. The choosing
itself is :mod:`visionlab.tracking.choice`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from visionlab.tracking.choice import (
    ALIAS,
    CHOSEN_ON,
    ROBUST_ALIAS,
    Candidate,
    best_candidate,
    robust_floor,
    robust_pool,
    score,
)
from visionlab.tracking.mlflow_run import _client
from visionlab.tracking.model_logging import MODEL_NAME

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registration:
    """What the registry holds for one data set after :func:`register_best`."""

    dataset: str
    name: str
    experiment: str | None = None
    run_id: str | None = None
    version: str | None = None
    changed: bool = False
    skipped: str | None = None  # why nothing was registered
    alias: str = ALIAS

    @property
    def chosen_on(self) -> str:
        return CHOSEN_ON[self.alias]


def registered_name(dataset: str, prefix: str = "visionlab") -> str:
    return f"{prefix}-{dataset}"


def logged_model_id(client: MlflowClient, run_id: str) -> str | None:
    """The newest ``mlflow_model`` logged in the run (an evaluate rerun logs another one)."""
    run = client.get_run(run_id)
    outputs = run.outputs.model_outputs if run.outputs else []
    found = []
    for output in outputs:
        try:
            model = client.get_logged_model(output.model_id)
        except MlflowException:
            continue
        if model.name == MODEL_NAME:
            found.append((model.creation_timestamp, output.model_id))
    return max(found)[1] if found else None


def _rounded(value: tuple[float, float]) -> tuple[float, float]:
    # Versions carry their scores as 4-decimal tags: compare at that precision.
    return round(value[0], 4), round(value[1], 4)


def _held_score(
    current: ModelVersion | None, candidates: Sequence[Candidate], alias: str = ALIAS
) -> tuple[float, float] | None:
    """The score of the version the alias holds: fresh when its run competes here, else tagged
    (None when it has no readable tags: then the workspace's best takes the alias)."""
    if current is None:
        return None
    for candidate in candidates:
        if candidate.run_id == current.run_id:
            return _rounded(score(candidate, alias))
    tags = current.tags or {}
    try:
        # Versions registered before selection moved to validation carry no val tags (before the
        # robust alias, no val_worst_degraded tag): None.
        if alias == ROBUST_ALIAS:
            return _rounded((float(tags["val_worst_degraded"]), float(tags["val_accuracy"])))
        return _rounded((float(tags["val_accuracy"]), -float(tags["val_loss"])))
    except (KeyError, TypeError, ValueError):
        return None


def _holds(version: ModelVersion, model_id: str) -> bool:
    """Whether a registered version is that logged model. The SQLite registry does not return
    ``model_id``; the source URI always names it."""
    return version.model_id == model_id or version.source == f"models:/{model_id}"


def _ensure_registered_model(client: MlflowClient, name: str, dataset: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(
                name,
                tags={"visionlab.dataset": dataset},
                description=(
                    f"The best full-scale visionlab model on {dataset}: @best chosen on validation "
                    "accuracy (then validation loss), @robust on the worst degraded validation copy "
                    "(evaluate.robustness); test figures are tagged, never used to choose."
                ),
            )
        except MlflowException:
            client.get_registered_model(name)  # created meanwhile by a parallel report: fine


def _unselectable(
    dataset: str, name: str, best: Candidate | None, candidates: Sequence[Candidate], alias: str = ALIAS
) -> Registration | None:
    """The skipped registration when no candidate can take the alias (no store needed to tell), else None."""
    if best is None and candidates and all(c.quick_try for c in candidates):
        first = min(candidates, key=lambda c: c.experiment)
        reason = f"only quick tries, which never become @{alias} ({first.experiment}: {first.quick_try})"
        log.info("registry: %s: skipped: %s", name, reason)
        return Registration(dataset, name, skipped=reason)
    if best is None and candidates:  # @robust: none of them scored degraded validation copies
        reason = "no full-scale experiment scored degraded validation copies (evaluate.robustness)"
        log.info("registry: %s: skipped: %s", name, reason)
        return Registration(dataset, name, skipped=reason)
    if best is None:
        return Registration(dataset, name, skipped="no evaluated experiment")
    if not best.run_id:
        reason = f"{best.experiment}: no MLflow run recorded (data/models/{best.experiment}/mlflow_run.json)"
        log.warning("registry: %s: skipped: %s", name, reason)
        return Registration(dataset, name, best.experiment, skipped=reason)
    return None


def _best_model_id(client: MlflowClient, dataset: str, name: str, best: Candidate) -> str | Registration:
    """The logged model of ``best``'s run, or the skipped registration saying why there is none."""
    try:
        model_id = logged_model_id(client, best.run_id)
    except MlflowException as exc:
        reason = f"{best.experiment}: run {best.run_id} is unknown to the store at {client.tracking_uri}"
        log.warning("registry: %s: skipped: %s (%s)", name, reason, exc.message.splitlines()[0])
        return Registration(dataset, name, best.experiment, best.run_id, skipped=reason)
    if model_id is None:
        reason = f"{best.experiment}: run {best.run_id} has no logged {MODEL_NAME}; rerun its evaluate stage"
        log.warning("registry: %s: skipped: %s", name, reason)
        return Registration(dataset, name, best.experiment, best.run_id, skipped=reason)
    return model_id


def _version_of(client: MlflowClient, name: str, best: Candidate, model_id: str) -> ModelVersion:
    """The model version holding ``best``'s model: one registered before (the best may go back to an
    earlier run: reused, not duplicated), else a new one tagged with what it was selected on."""
    existing = [v for v in client.search_model_versions(f"name = '{name}'") if _holds(v, model_id)]
    if existing:
        return max(existing, key=lambda v: int(v.version))
    return client.create_model_version(
        name,
        source=f"models:/{model_id}",
        run_id=best.run_id,
        model_id=model_id,
        tags={
            "visionlab.experiment": best.experiment,
            "visionlab.selected_on": "validation",
            "val_accuracy": f"{best.val_accuracy:.4f}",
            "val_loss": f"{best.val_loss:.4f}",
            "test_accuracy": f"{best.test_accuracy:.4f}",
            "test_macro_f1": f"{best.test_macro_f1:.4f}",
            **(
                {"val_worst_degraded": f"{best.val_worst_degraded:.4f}"}
                if math.isfinite(best.val_worst_degraded)
                else {}
            ),
        },
    )


def register_best(
    dataset: str,
    candidates: Sequence[Candidate],
    client: MlflowClient | None = None,
    prefix: str = "visionlab",
    alias: str = ALIAS,
) -> Registration:
    """Point ``<prefix>-<dataset>@<alias>`` at the chosen candidate's logged model (``best``: on
    validation accuracy; ``robust``: on the worst degraded validation copy).

    Never raises for a run the store does not know (a changed ``MLFLOW_TRACKING_URI``, a deleted
    store) or a run logged before models were: the data set is skipped with a warning, and the
    registry keeps what it had, rather than calling a lesser model the best.
    """
    if alias not in CHOSEN_ON:
        raise ValueError(f"registry alias {alias!r}: visionlab chooses only {', '.join(CHOSEN_ON)}")
    name = registered_name(dataset, prefix)
    best = best_candidate(candidates, alias)
    found = _unselectable(dataset, name, best, candidates, alias)
    if found is None:
        assert best is not None  # _unselectable answered every case without one
        client = client or _client()
        model_id = _best_model_id(client, dataset, name, best)
        found = (
            model_id
            if isinstance(model_id, Registration)
            else _point(client, dataset, name, best, model_id, candidates, alias)
        )
    return dataclasses.replace(found, alias=alias)


def _point(
    client: MlflowClient,
    dataset: str,
    name: str,
    best: Candidate,
    model_id: str,
    candidates: Sequence[Candidate],
    alias: str,
) -> Registration:
    """``name@alias`` moved to ``best``'s version, unless the version it holds scores at least as high."""
    _ensure_registered_model(client, name, dataset)
    try:
        current = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        current = None
    if current is not None and current.run_id == best.run_id and _holds(current, model_id):
        return Registration(dataset, name, best.experiment, best.run_id, str(current.version), changed=False)
    held = _held_score(current, candidates, alias)
    floor = robust_floor(robust_pool(candidates)) if alias == ROBUST_ALIAS else float("-inf")
    if held is not None and held[1] < round(floor, 4):
        held = None  # no longer within chance of the best clean model here: it cannot hold @robust
    if current is not None and held is not None and held >= _rounded(score(best, alias)):
        experiment = current.tags.get("visionlab.experiment")
        log.info(
            "registry: %s@%s stays at version %s (%s): it scores at least as high as %s",
            name,
            alias,
            current.version,
            experiment,
            best.experiment,
        )
        return Registration(dataset, name, experiment, current.run_id, str(current.version), changed=False)
    version = _version_of(client, name, best, model_id)
    client.set_registered_model_alias(name, alias, version.version)
    log.info("registry: %s@%s -> version %s (%s)", name, alias, version.version, best.experiment)
    return Registration(dataset, name, best.experiment, best.run_id, str(version.version), changed=True)
