"""The lists ``index.json`` derives from an explain folder's records, for the report and the gallery.

``artifacts`` names every picture with what it shows (kind, layer, image, classes, scores), so a
reader needs no knowledge of the folder's layout; ``thumbnails`` orders the Grad-CAM overlays a
report shows first.
"""

from __future__ import annotations

from typing import Any

from visionlab.explanations.methods import registered

Entry = dict[str, Any]
NO_IMAGE = {"image": None, "label": None, "predicted": None, "probability": None}


def _entry(kind: str, file: str | None, **fields: Any) -> list[Entry]:
    """One picture's entry, or none when the folder has no such picture."""
    return [{"kind": kind, "file": file, **fields}] if file else []


def _per_image(index: dict[str, Any]) -> list[Entry]:
    """Each explained image: its input, then every registered method's pictures per explained class."""
    layer, out = index["layer"], []
    for record in index["images"]:
        about = {"image": record["source"], "label": record["label"], "predicted": record["predicted"]}
        out += _entry("input", record["image"], layer=None, probability=record["confidence"], **about)
        for item in record["explanations"]:
            for method in registered():
                for picture in method.pictures:
                    out += _entry(
                        picture.key,
                        item.get(picture.key),
                        layer=layer if picture.on_layer else None,
                        probability=item["probability"],
                        explained=item["class"],
                        **about,
                    )
    return out + _entry("gradcam_grid", index.get("grid"), layer=layer, **NO_IMAGE)


def _feature_maps(maps: dict[str, Any] | None) -> list[Entry]:
    if not maps:
        return []
    source = maps["image"]
    about = {"image": source["source"], "label": source["label"], "predicted": source["predicted"]}
    return [
        entry
        for item in maps["layers"]
        for entry in _entry(
            "feature_maps",
            item["file"],
            layer=item["layer"],
            probability=source["confidence"],
            channels=item["channels"],
            shown=item["shown"],
            **about,
        )
    ]


def _filters(filters: dict[str, Any] | None) -> list[Entry]:
    if not filters:
        return []
    layer, kernels = filters["layer"], filters["kernels"]
    return _entry("filters", filters["colour"], layer=layer, kernels=kernels, **NO_IMAGE) + _entry(
        "filters_channels", filters["channels"], layer=layer, kernels=kernels, **NO_IMAGE
    )


def _patches(patches: dict[str, Any] | None) -> list[Entry]:
    """Per target unit: its grid of maximally activating patches, then each patch with its source."""
    out: list[Entry] = []
    for target in patches["targets"] if patches else []:
        what = {"target": target["name"], "target_kind": target["kind"], "layer": target["layer"]}
        out += _entry("max_patches", target["grid"], **NO_IMAGE, **what)
        for patch in target["patches"]:
            out += _entry(
                "patch",
                patch["file"],
                image=patch["source"],
                label=patch["label"],
                predicted=patch["predicted"],
                probability=None,
                score=patch["score"],
                box=patch["box"],
                position=patch["position"],
                **what,
            )
    return out


def artifact_list(index: dict[str, Any]) -> list[Entry]:
    """Every picture with what it shows: the flat list a report reads."""
    return (
        _per_image(index)
        + _feature_maps(index.get("feature_maps"))
        + _filters(index.get("filters"))
        + _patches(index.get("patches"))
    )


def thumbnail_order(records: list[dict]) -> list[str]:
    """Every Grad-CAM overlay, correct and misclassified ones alternately: a report shows the first
    ``report.thumbnails`` of them."""
    correct = [r["overlay"] for r in records if r["correct"]]
    wrong = [r["overlay"] for r in records if not r["correct"]]
    mixed = [f for pair in zip(correct, wrong, strict=False) for f in pair]
    rest = correct[len(mixed) // 2 :] + wrong[len(mixed) // 2 :]
    return mixed + rest
