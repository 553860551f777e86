"""Checks across sections of params.yaml: what one section names must exist in another.

Each raises ValueError naming the key to fix; pydantic reports it as the ``Params`` validation error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visionlab.params.data import normalise_folder
from visionlab.params.merge import merged
from visionlab.params.messages import unknown_name
from visionlab.params.training import FEATURE_KEYS, TrainParams

if TYPE_CHECKING:
    from visionlab.params import Params


def check_folders(params: Params) -> None:
    """Each folder source is listed in ``folders`` (DVC hashes it from there), and nothing else is."""
    for name, card in params.datasets.items():
        folder = card.source.folder
        if folder is None:
            continue
        listed = params.folders.get(name)
        if listed is None:
            raise ValueError(
                f"datasets.{name}.source.folder: DVC tracks a folder through the folders map: add "
                f"`folders: {{{name}: {normalise_folder(folder)}}}` to params.yaml "
                "(`visionlab data add` writes both)"
            )
        if normalise_folder(listed) != normalise_folder(folder):
            raise ValueError(
                f"folders.{name}: {listed!r} is not datasets.{name}.source.folder ({folder!r}): "
                "make them the same folder"
            )
    for name, listed in params.folders.items():
        card = params.datasets.get(name)
        if card is None or card.source.folder is None:
            raise ValueError(
                f"folders.{name}: no data set {name!r} with a folder source; remove it, or give "
                f"datasets.{name} `source: {{folder: {listed}}}`"
            )
        if listed.startswith("~"):
            raise ValueError(
                f"folders.{name}: DVC does not expand ~: write the full path ({normalise_folder(listed)})"
            )


def check_references(params: Params) -> None:
    """Experiments name existing data sets, models and recipes, and no layer sets what featurize caches."""
    for name, exp in params.experiments.items():
        if exp.dataset not in params.datasets:
            raise ValueError(
                f"experiments.{name}.dataset: unknown data set {exp.dataset!r}"
                + unknown_name(exp.dataset, params.datasets)
            )
        if exp.model not in params.models:
            raise ValueError(
                f"experiments.{name}.model: unknown model {exp.model!r}"
                + unknown_name(exp.model, params.models)
            )
        if exp.recipe not in params.recipes:
            raise ValueError(
                f"experiments.{name}.recipe: unknown recipe {exp.recipe!r}"
                + unknown_name(exp.recipe, params.recipes)
            )
    for name, overrides in params.recipes.items():
        merged(TrainParams, params.train.model_dump(), overrides or {}, f"recipes.{name}")
        key = _feature_key(overrides or {})
        if key:
            where = "train: or in the model's image_size" if key == "image_size" else f"train.{key}"
            raise ValueError(
                f"recipes.{name}.{key}: a recipe cannot set {key} (cached features depend on it); "
                f"set it in {where}"
            )
    for name, exp in params.experiments.items():
        if exp.train_images is not None:
            for where, section in (
                (f"models.{exp.model}", params.models[exp.model].model_fields_set),
                (f"experiments.{name}.model_overrides", exp.model_overrides),
            ):
                if "augmented" in section:
                    raise ValueError(
                        f"{where}.augmented: experiments.{name}.train_images decides which images "
                        "it trains on; remove augmented"
                    )
        key = _feature_key(exp.train_overrides)
        if key:
            where = "model_overrides.image_size" if key == "image_size" else f"train.{key}"
            raise ValueError(
                f"experiments.{name}.train_overrides.{key}: cached features depend on {key}, "
                f"so set it in {where} instead"
            )
        params.model_of(name)
        params.recipe_of(name)
        params.explain_of(name)


def _feature_key(overrides: dict) -> str | None:
    """The first key of a recipe or train_overrides that only ``train`` may set.

    featurize's DVC params are ``train.<key>`` (see FEATURE_KEYS): a layer over train that set one
    would train on features cached for another value.
    """
    forbidden = sorted(FEATURE_KEYS & set(overrides))
    return forbidden[0] if forbidden else None
