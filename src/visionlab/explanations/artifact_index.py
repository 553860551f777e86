"""The lists ``index.json`` derives from an explain folder's records, for the report and the gallery.

``artifacts`` names every picture with what it shows (kind, layer, image, classes, scores), so a
reader needs no knowledge of the folder's layout; ``thumbnails`` orders the Grad-CAM overlays a
report shows first.
"""

from __future__ import annotations

from typing import Any

from visionlab.explanations.methods import registered


def artifact_list(index: dict[str, Any]) -> list[dict[str, Any]]:
    """Every picture with what it shows: the flat list a report reads."""
    layer = index["layer"]
    out: list[dict[str, Any]] = []

    def add(kind: str, file: str | None, **fields: Any) -> None:
        if file:
            out.append({"kind": kind, "file": file, **fields})

    for record in index["images"]:
        about = {"image": record["source"], "label": record["label"], "predicted": record["predicted"]}
        add("input", record["image"], layer=None, probability=record["confidence"], **about)
        for item in record["explanations"]:
            for method in registered():
                for picture in method.pictures:
                    add(
                        picture.key,
                        item.get(picture.key),
                        layer=layer if picture.on_layer else None,
                        probability=item["probability"],
                        explained=item["class"],
                        **about,
                    )
    add(
        "gradcam_grid",
        index.get("grid"),
        layer=layer,
        image=None,
        label=None,
        predicted=None,
        probability=None,
    )
    maps = index.get("feature_maps")
    if maps:
        source = maps["image"]
        about = {"image": source["source"], "label": source["label"], "predicted": source["predicted"]}
        for item in maps["layers"]:
            add(
                "feature_maps",
                item["file"],
                layer=item["layer"],
                probability=source["confidence"],
                channels=item["channels"],
                shown=item["shown"],
                **about,
            )
    filters = index.get("filters")
    if filters:
        none = {"image": None, "label": None, "predicted": None, "probability": None}
        add("filters", filters["colour"], layer=filters["layer"], kernels=filters["kernels"], **none)
        add(
            "filters_channels",
            filters["channels"],
            layer=filters["layer"],
            kernels=filters["kernels"],
            **none,
        )
    patches = index.get("patches")
    for target in patches["targets"] if patches else []:
        what = {"target": target["name"], "target_kind": target["kind"], "layer": target["layer"]}
        add("max_patches", target["grid"], image=None, label=None, predicted=None, probability=None, **what)
        for patch in target["patches"]:
            add(
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


def thumbnail_order(records: list[dict]) -> list[str]:
    """Every Grad-CAM overlay, correct and misclassified ones alternately: a report shows the first
    ``report.thumbnails`` of them."""
    correct = [r["overlay"] for r in records if r["correct"]]
    wrong = [r["overlay"] for r in records if not r["correct"]]
    mixed = [f for pair in zip(correct, wrong, strict=False) for f in pair]
    rest = correct[len(mixed) // 2 :] + wrong[len(mixed) // 2 :]
    return mixed + rest
