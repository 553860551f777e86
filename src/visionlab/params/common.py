"""What every section of params.yaml shares: strict mappings and the value types they reuse."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Names become DVC stage names, params keys and folders: no dots (DVC reads them as nesting).
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
Fraction = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[int, Field(gt=0)]
HostPort = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\[\]:-]+:[0-9]{1,5}$")]
DropoutRate = Annotated[float, Field(ge=0, lt=1)]


class Section(BaseModel):
    """A params.yaml mapping: an unknown key is an error, and a loaded value never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
