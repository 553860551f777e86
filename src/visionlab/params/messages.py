"""Validation errors as one line per bad key, with a "did you mean" where a close name exists."""

from __future__ import annotations

import difflib
import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel


def unknown_name(name: str, known) -> str:
    """`` (did you mean 'x'? known: a, b)``: the tail of an unknown-name message."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f" ({hint}known: {', '.join(names) or 'none'})"


def _fields_at(schema: Any, loc: tuple) -> list[str]:
    """The keys allowed beside the last part of ``loc`` inside ``schema``, for a "did you mean"."""
    node = schema
    for part in loc[:-1]:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            if field is None:
                return []
            node = field.annotation
        elif get_origin(node) is dict:
            node = get_args(node)[1]
        else:
            return []
    node = _unwrap(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """``X`` from ``X | None`` and ``Annotated[X, ...]``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def describe(error: dict[str, Any], schema: Any = None) -> str:
    key = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key"
        known = _fields_at(schema, tuple(error["loc"])) if schema is not None else []
        close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1, cutoff=0.6)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    elif kind == "missing":
        message = "required key is missing"
    else:
        message = error["msg"].removeprefix("Value error, ")
        if "input" in error and not isinstance(error["input"], dict):
            message += f" (got {error['input']!r})"
    if key and kind == "value_error" and re.match(r"^[a-z_]+: ", message):
        return f"{key}.{message}"  # a check across keys names the key at fault: train.nnodes
    return f"{key}: {message}" if key else message
