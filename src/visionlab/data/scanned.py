"""One file the prepare stage saw under an image root, with its verdict (shared by prepare and
its cleaning report, below both)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_EXTENSION_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "gif": "GIF", "bmp": "BMP"}


@dataclass(frozen=True)
class Scanned:
    """One file seen under the image root, with its verdict."""

    path: str  # relative to the project root: every stage opens it as is
    rel: str  # relative to the image root: the key of exclusion lists
    label: str | None  # None for files beside the class folders
    sha256: str
    reason: str | None
    detail: str
    mode: str | None
    format: str | None = None
    pixels: int = 0  # width x height: keep_one keeps a near-duplicate group's largest image
    fingerprint: int | None = None  # perceptual hash, when near-duplicates are looked for

    def repairs(self) -> list[str]:
        """What loading this image fixes: a non-RGB mode, or a format its extension hides."""
        found = []
        if self.mode not in (None, "RGB"):
            found.append(f"{self.mode} converted to RGB")
        extension = Path(self.path).suffix.lower().lstrip(".")
        expected = _EXTENSION_FORMATS.get(extension)
        if self.format and expected and self.format != expected:
            found.append(f"{self.format} data under a .{extension} name, decoded as {self.format}")
        return found
