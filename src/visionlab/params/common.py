"""What every section of params.yaml shares: strict mappings and the value types they reuse."""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, StringConstraints

from visionlab.params import trace

# Names become DVC stage names, params keys and folders: no dots (DVC reads them as nesting).
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
Fraction = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[int, Field(gt=0)]
HostPort = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\[\]:-]+:[0-9]{1,5}$")]
DropoutRate = Annotated[float, Field(ge=0, lt=1)]


def _yaml_off(value: Any) -> Any:
    # YAML 1.1 (params.yaml, and DVC's -S values) reads a bare `off` as false: take it as the
    # "off" the user wrote, for every setting whose choices include "off".
    return "off" if value is False else value


YamlOff = BeforeValidator(_yaml_off)


def _workers(value: Any) -> int | str:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise ValueError("expected a number of processes (0 or more) or auto")


# Loader processes decoding images beside the model, or auto: as many as the cores spare
# (decoding_workers below). One validator, so a bad value gets one message, not one per type.
Workers = Annotated[int | str, PlainValidator(_workers)]


def decoding_workers(setting: int | str) -> int:
    """Loader processes for a ``num_workers`` setting. ``auto``: the cores the model leaves spare
    (all but 2, at most 4), so none on a 2-core machine, where workers take cores from the model
    itself: featurize ran 94 against 84 images/s in-process and `visionlab predict` 134 against
    105 (benchmarks/results/featurize_breakdown.md, predict_speed.md)."""
    if setting == "auto":
        return max(0, min(4, (os.cpu_count() or 1) - 2))
    return int(setting)


class Section(BaseModel):
    """A params.yaml mapping: an unknown key is an error, and a loaded value never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        with trace.quiet():  # a validator's reads are not the stage's
            super().__init__(**data)

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
        with trace.quiet():
            return super().model_validate(obj, **kwargs)

    @classmethod
    def model_validate_json(cls, json_data: str | bytes, **kwargs: Any) -> Any:
        with trace.quiet():
            return super().model_validate_json(json_data, **kwargs)

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        # Off unless a stage traces its reads (VISIONLAB_TRACE_PARAMS): one global test per access.
        if trace.ACTIVE and name[0] != "_" and name in type(self).model_fields:
            trace.record(self, name, value)
        return value

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Any:
        copy = super().model_copy(update=update, deep=deep)
        trace.copy_sources(self, copy)  # a copy reads from where its original did
        return copy
