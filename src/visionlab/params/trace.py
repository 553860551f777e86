"""Which params.yaml keys a stage actually reads: the check behind dvc.yaml's params lists.

DVC reruns a stage when a param it declares changes, so a key read but not declared leaves stale
results, and a key declared but never read reruns work for nothing. With ``VISIONLAB_TRACE_PARAMS``
set to a folder, a stage records every field it reads off the validated params (``Section``
reports each read here) and writes the params.yaml paths they came from to
``<folder>/<stage>@<name>.<pid>.json`` (``report.<pid>.json``) at exit;
``tests/integration/test_params_reads.py`` holds them against dvc.yaml.

A resolved object (an experiment's recipe, model or explanation settings) has several sources per
field: ``recipe_of(e).lr`` comes from ``train.lr``, the recipe and the experiment's overrides. Its
fields carry every one of them; an open map (a recipe, an override map) is named as a whole, since
DVC can only depend on keys that exist and a user may add one later.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ENV = "VISIONLAB_TRACE_PARAMS"
ACTIVE = False  # read by Section.__getattribute__ on every field access: keep it a plain global
_quiet = 0  # > 0 inside a resolver, whose result is annotated with its sources instead
_reads: set[str] = set()
# id(object) -> (object, {field: sources}); the object is held so that its id is not reused.
_sources: dict[int, tuple[Any, dict[str, tuple[str, ...]] | None]] = {}


def start(stage: str, name: str) -> None:
    """Record reads from now on when ``VISIONLAB_TRACE_PARAMS`` names a folder (else do nothing)."""
    global ACTIVE
    folder = os.environ.get(ENV)
    if not folder or ACTIVE:
        return
    ACTIVE = True
    label = stage if name == stage else f"{stage}@{name}"  # DVC's own name: report, train@<exp>
    out = Path(folder) / f"{label}.{os.getpid()}.json"
    atexit.register(lambda: _write(out))


def _write(out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(sorted(_reads), indent=1) + "\n")
    except OSError as exc:  # at exit: one line, not a traceback after the stage's own output
        print(f"{ENV}: cannot write the params reads to {out} ({exc.strerror})", file=sys.stderr)


def annotate(section: BaseModel, path: str) -> None:
    """Give ``section`` (and every section nested in it) its params.yaml path, field by field."""
    if not ACTIVE:
        return
    fields = {}
    for field in type(section).model_fields:
        where = f"{path}.{field}" if path else field  # path "" is params.yaml itself
        fields[field] = (where,)
        value = section.__dict__[field]
        if isinstance(value, BaseModel):
            annotate(value, where)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    annotate(item, f"{where}.{key}")
    _sources[id(section)] = (section, fields)


def annotate_merged(
    section: BaseModel,
    bases: list[str],
    layers: list[str],
    extra: tuple[str, ...] = (),
    base_only: frozenset[str] = frozenset(),
) -> None:
    """A resolved section: each field from ``<base>.<field>``, laid over by the open maps ``layers``.

    ``extra`` are keys behind every field (which model or recipe the experiment picked);
    ``base_only`` fields the layers cannot set (validation refuses them there).
    """
    if not ACTIVE:
        return
    fields = {}
    for field in type(section).model_fields:
        own = tuple(f"{base}.{field}" for base in bases)
        fields[field] = own if field in base_only else (*own, *layers, *extra)
        value = section.__dict__[field]
        if isinstance(value, BaseModel):
            annotate_merged(value, [f"{base}.{field}" for base in bases], layers, extra)
    _sources[id(section)] = (section, fields)


def add_sources(section: BaseModel, field: str, sources: tuple[str, ...]) -> None:
    """``field`` of ``section`` also depends on ``sources`` (e.g. epochs on epochs_cap)."""
    known = _sources.get(id(section)) if ACTIVE else None
    if known is not None and known[1] is not None:
        known[1][field] = (*known[1][field], *sources)


def copy_sources(source: BaseModel, copy: BaseModel) -> None:
    """``copy`` (a ``model_copy`` of ``source``) reads from where ``source`` does."""
    known = _sources.get(id(source)) if ACTIVE else None
    if known is not None:
        _sources[id(copy)] = (copy, None if known[1] is None else dict(known[1]))


def not_params(section: BaseModel) -> None:
    """``section`` was read from a file (a checkpoint's model spec), not params.yaml: never recorded."""
    if ACTIVE:
        _sources[id(section)] = (section, None)
        for field in type(section).model_fields:
            if isinstance(section.__dict__[field], BaseModel):
                not_params(section.__dict__[field])


def record(section: BaseModel, field: str, value: Any) -> None:
    """``section.field`` was read: note its sources, unless it merely leads to more sections."""
    if _quiet:
        return
    if isinstance(value, BaseModel) or (
        isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values())
    ):
        return  # a container: the fields read off it are recorded instead
    known = _sources.get(id(section))
    if known is None:
        _reads.add(f"?{type(section).__name__}.{field}")  # a section nobody annotated: the test names it
    elif known[1] is not None:
        _reads.update(known[1][field])


def read(*paths: str) -> None:
    """Record ``paths`` as read (a resolver's own choices, e.g. which data set an experiment uses)."""
    if ACTIVE and not _quiet:
        _reads.update(paths)


@contextmanager
def quiet() -> Iterator[None]:
    """Inside a resolver: its reads are the sources of what it returns, not reads of their own."""
    global _quiet
    _quiet += 1
    try:
        yield
    finally:
        _quiet -= 1


def reads() -> set[str]:
    """What has been read so far (for tests in one process)."""
    return set(_reads)


def reset() -> None:
    """Stop tracing and forget everything (for tests in one process)."""
    global ACTIVE
    ACTIVE = False
    _reads.clear()
    _sources.clear()
