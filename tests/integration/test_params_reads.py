"""Each stage depends on exactly the params it reads: traced reads of a real `dvc repro` against dvc.yaml.

The tiny pipeline's first `dvc repro` runs with ``VISIONLAB_TRACE_PARAMS`` (see
``visionlab.params.trace``): every stage writes the params.yaml keys behind each field it read. A
key read but not declared in dvc.yaml leaves stale results when it changes; a key declared but
never read reruns the stage for nothing. Both fail here, bar the allow-list below.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from dvc.repo import Repo

from tests.integration.test_pipeline import EXPERIMENTS
from tests.test_dvc_params import _deps
from visionlab.params import ADDED_OFF, RUNTIME_PARAMS

pytestmark = pytest.mark.slow

# Read but not declared, on purpose: every change of these reaches the stage through a declared
# file dep (they feed a warning or the quick-try label; the data, hence the model, change with them).
READ_THROUGH_FILES = {
    "download": ("datasets.", "download.mirror"),  # where from; data/resolved/sources pins the bytes
    "featurize": ("augment.",),
    "train": ("prepare.", "augment.", "download.mirror"),  # the mirror: an MLflow tag
    "report": ("prepare.", "augment.", "train.", "recipes.", "datasets."),
}
# Declared though this tiny run never reads them: sgd and two-phase recipes read these.
DECLARED_UNREAD = {
    "train.momentum",
    "train.nesterov",
    "train.head_epochs",
    "train.finetune_lr_factor",
    "train.finetune_batch_norm",
}


def covers(key: str, read: str) -> bool:
    """A dependency on ``key`` reruns the stage when ``read`` changes (or the reverse)."""
    return read == key or read.startswith(key + ".") or key.startswith(read + ".")


def stage_reads(traces) -> dict[str, set[str]]:
    reads: dict[str, set[str]] = defaultdict(set)
    for path in traces.glob("*.json"):
        reads[path.name.rsplit(".", 2)[0]] |= set(json.loads(path.read_text()))  # "<stage>.<pid>.json"
    return reads


def declared_params(project) -> dict[str, set[str]]:
    """Each stage's params deps, and the keys of the params records it depends on
    (``data/resolved/{train,explain}/<experiment>.json`` hold those keys' values: DVC reruns the
    stage when one changes, as for a params dep; the train record leaves out ``ADDED_OFF`` keys
    while they are off and holds them once set)."""
    repo = Repo(str(project))
    try:
        declared = {}
        for stage in repo.index.stages:
            files, keys = _deps(stage)
            for path in files:
                if path.startswith("data/resolved/"):
                    keys |= set(json.loads((project / path).read_text()).get("params", {}))
                if path.startswith("data/resolved/train/"):  # absent there = off; set, they are in it
                    keys |= {f"train.{key}" for key in ADDED_OFF}
            declared[stage.name] = keys
        return declared
    finally:
        repo.close()


def generic(stage: str, key: str) -> str:
    """``experiments.flowers-cnn.dataset`` of ``train@flowers-cnn`` -> ``experiments.{name}.dataset``."""
    name = stage.partition("@")[2]
    return ".".join("{name}" if part == name else part for part in key.split("."))


def test_every_stage_declares_what_it_reads_and_reads_what_it_declares(tiny_pipeline):
    tiny = tiny_pipeline(EXPERIMENTS)
    reads = stage_reads(tiny.traces)
    declared = declared_params(tiny.path)
    assert set(reads) == set(declared), "every stage of the run wrote its reads"
    problems = []
    for stage, keys in sorted(reads.items()):
        kind = stage.partition("@")[0]
        untraced = sorted(k for k in keys if k.startswith("?"))
        if untraced:
            problems.append(f"{stage}: read sections the tracer cannot place: {untraced}")
        undeclared = sorted(
            k
            for k in keys - set(untraced) - RUNTIME_PARAMS
            if not any(covers(d, k) for d in declared[stage])
            and not k.startswith(READ_THROUGH_FILES.get(kind, ()))
        )
        if undeclared:
            problems.append(f"{stage}: reads but does not declare {undeclared}")
        runtime = sorted(
            d for d in declared[stage] if any(r == d or r.startswith(d + ".") for r in RUNTIME_PARAMS)
        )
        if runtime:
            problems.append(f"{stage}: depends on where or how fast it runs: {runtime}")
    # A stage's params list is shared by every item of its foreach: a key is read if any item reads it.
    kinds: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for stage in reads:
        kind = stage.partition("@")[0]
        kinds[kind][0].update(generic(stage, k) for k in declared[stage])
        kinds[kind][1].update(generic(stage, k) for k in reads[stage])
    for kind, (keys, read) in sorted(kinds.items()):
        unread = sorted(d for d in keys - DECLARED_UNREAD if not any(covers(d, k) for k in read))
        if unread:
            problems.append(f"{kind}: declares but no item reads {unread}")
    assert not problems, "\n".join(problems)
