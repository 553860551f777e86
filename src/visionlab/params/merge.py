"""Layering partial overrides over a validated section: recipes over train, overrides over a model.

Nested mappings merge key by key; the result is validated again, and an error names the override's
key (``params.yaml: recipes.fast.lr: ...``), not the merged copy's.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from visionlab.errors import ParamsError
from visionlab.params.common import Section
from visionlab.params.messages import describe


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def merged(schema: type[Section], base: dict[str, Any], overrides: dict[str, Any], where: str):
    """``base`` with ``overrides`` laid over it, validated; errors name the override's key."""
    if not isinstance(overrides, dict):
        raise ParamsError(f"params.yaml: {where}: expected a mapping (got {overrides!r})")
    try:
        return schema.model_validate(deep_merge(base, overrides))
    except ValidationError as exc:
        lines = [f"params.yaml: {where}.{describe(err, schema)}" for err in exc.errors()]
        raise ParamsError("\n".join(lines)) from None
