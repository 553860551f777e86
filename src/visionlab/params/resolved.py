"""Records that later stages depend on instead of raw params: each holds what changes their result.

DVC reruns a stage when a declared params key changes, and a key must exist in params.yaml to be
declared. A stage that reads a model resolved from several places (the model, the experiment's
overrides, ``train``) would have to depend on all of them, head knobs included. The resolve
stage writes these records instead; a stage that reads its record, not params.yaml, reruns
exactly when the record changes.
"""

from __future__ import annotations

from typing import Any

from visionlab.params import Params

# The model keys that shape what the frozen part of a network computes. The rest (dropout, l2,
# batch norm of from-scratch nets, the head's hidden layers) act on the head or in training only.
BASE_KEYS = ("arch", "weights", "base", "unfreeze_from", "activation_cache", "normalize")
HEAD_KEYS = ("native", "pool")  # a native head keeps the backbone's own dense layers; pool feeds the head


def feature_inputs(params: Params, experiment: str) -> dict[str, Any]:
    """What featurize@<experiment> computes with (data/resolved/features/<experiment>.json)."""
    spec = params.model_of(experiment)
    if spec.base == "trainable":
        return {"experiment": experiment, "base": spec.base}  # nothing to cache, whatever else
    return {
        "experiment": experiment,
        "dataset": params.experiment(experiment).dataset,
        "augmented": spec.augmented,
        "grayscale": params.dataset_of(experiment).grayscale,
        "image_size": params.image_size_of(experiment),
        "amp": params.recipe_of(experiment).amp,
        **{key: getattr(spec, key) for key in BASE_KEYS},
        "head": {key: getattr(spec.head, key) for key in HEAD_KEYS},
    }
