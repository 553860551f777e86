"""Records that later stages depend on instead of raw params: each holds what changes their result.

DVC reruns a stage when a declared params key changes, and a key must exist in params.yaml to be
declared. A stage that reads a model resolved from several places (the model, the experiment's
overrides, ``train``) would have to depend on all of them, head knobs included. The resolve
stage writes these records instead; a stage that reads its record, not params.yaml, reruns
exactly when the record changes.

Two kinds of record:

- **computed inputs** (:func:`feature_inputs`): what featurize computes with, read by the stage
  itself, so an equal result from different params keeps the cache;
- **params by key** (:func:`train_params`, :func:`explain_params`): the values of the keys a stage
  reads, under a ``params`` mapping, exactly as DVC would compare them, but without DVC's demand
  that every key exist in params.yaml. An experiment writes only what differs from its model and
  recipe, and train need not depend on the whole experiment (an explanation layer would retrain it).
  tests/integration/test_params_reads.py counts these keys as the stage's declared params.
"""

from __future__ import annotations

from typing import Any

from visionlab.params import ADDED_OFF, RUNTIME_KEYS, Params, trace, without_added_off

# The model keys that shape what the frozen part of a network computes. The rest (dropout, l2,
# batch norm of from-scratch nets, the head's hidden layers) act on the head or in training only.
BASE_KEYS = ("arch", "weights", "base", "unfreeze_from", "activation_cache", "normalize")
HEAD_KEYS = ("native", "pool")  # a native head keeps the backbone's own dense layers; pool feeds the head


def feature_inputs(params: Params, experiment: str) -> dict[str, Any]:
    """What featurize@<experiment> computes with (data/resolved/features/<experiment>.json)."""
    spec = params.model_of(experiment)
    if spec.base == "trainable":
        return {"experiment": experiment, "base": spec.base}  # nothing to cache, whatever else
    found = {
        "experiment": experiment,
        "dataset": params.experiment(experiment).dataset,
        "augmented": spec.augmented,
        "grayscale": params.grayscale_of(experiment),
        "image_size": params.image_size_of(experiment),
        "amp": params.recipe_of(experiment).amp,
        **{key: getattr(spec, key) for key in BASE_KEYS},
        "head": {key: getattr(spec.head, key) for key in HEAD_KEYS},
    }
    if spec.train_degradations is not None:  # absent otherwise: no model's cache reruns for the key
        found["train_degradations"] = spec.train_degradations.model_dump()
    return found


def _values(section: Any) -> Any:
    with trace.quiet():  # the record stands for these keys: they are read once, below
        return section.model_dump(mode="json") if hasattr(section, "model_dump") else section


def _params_record(experiment: str, values: dict[str, Any]) -> dict[str, Any]:
    trace.read(*values)
    return {"experiment": experiment, "params": values}


def train_params(params: Params, experiment: str) -> dict[str, Any]:
    """The params train@<experiment> depends on (data/resolved/train/<experiment>.json).

    Its experiment's keys but ``explain_overrides``, its data set card, model and recipe, and every
    ``train`` key but where and how fast it runs (``RUNTIME_KEYS``) and later knobs left off
    (``ADDED_OFF``).
    """
    exp = params.experiment(experiment)
    own = _values(exp)
    values = {f"experiments.{experiment}.{k}": v for k, v in own.items() if k != "explain_overrides"}
    values[f"datasets.{exp.dataset}"] = _values(params.dataset(exp.dataset))
    values[f"models.{exp.model}"] = _values(params.models[exp.model])
    values[f"recipes.{exp.recipe}"] = _values(params.recipes[exp.recipe])
    train = without_added_off(_values(params.train))
    values |= {f"train.{k}": v for k, v in train.items() if k not in RUNTIME_KEYS}
    trace.read(*(f"train.{key}" for key in ADDED_OFF))  # read to leave them out, so resolve depends on them
    return _params_record(experiment, values)


def explain_params(params: Params, experiment: str) -> dict[str, Any]:
    """The params explain@<experiment> depends on (data/resolved/explain/<experiment>.json)."""
    exp = params.experiment(experiment)
    values = {
        "explain": _values(params.explain),
        f"experiments.{experiment}.dataset": exp.dataset,  # its MLflow experiment
        f"experiments.{experiment}.explain_overrides": _values(exp.explain_overrides),
    }
    return _params_record(experiment, values)
