"""The resolve stage: every record that a later stage depends on instead of raw params.

It reads all of params.yaml and runs in a second or two, so it may rerun often: DVC compares
each record's hash, and a stage whose record came out the same stays cached. Records:

- ``data/resolved/sources/<dataset>.json``: which bytes download@<dataset> extracts (the pin,
  not where it fetches them from), so pointing ``download.mirror`` at a copy of the same
  archive, or away from it again, keeps the extracted and prepared data.
- ``data/resolved/features/<experiment>.json``: what featurize@<experiment> computes with, so a
  head or recipe change keeps the cached features.
- ``data/resolved/train/<experiment>.json`` and ``data/resolved/explain/<experiment>.json``: the
  params train and explain read, by key, so an experiment lists only what differs and a new
  explanation layer does not retrain.
"""

from __future__ import annotations

import json
from pathlib import Path

from visionlab import paths
from visionlab.atomic import atomic_dir
from visionlab.data.sources import source_pin
from visionlab.params import Params
from visionlab.params.resolved import explain_params, feature_inputs, train_params


def resolve_stage(params: Params, name: str = "resolve") -> Path:
    out = paths.resolved_dir()
    records = {paths.resolved_source(d): source_pin(params, d) for d in params.datasets}
    for e in params.experiments:
        records[paths.resolved_features(e)] = feature_inputs(params, e)
        records[paths.resolved_train(e)] = train_params(params, e)
        records[paths.resolved_explain(e)] = explain_params(params, e)
    with atomic_dir(out) as scratch:
        for path, record in records.items():
            target = scratch / path.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return out
