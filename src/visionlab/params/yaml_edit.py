"""Adding entries to params.yaml as text, so its comments and layout stay as the user wrote them.

PyYAML cannot round-trip comments, and params.yaml is mostly comments: entries are rendered one
line each (flow style, as the shipped experiments are) and inserted at the end of their top-level
section. The caller validates the result before writing it.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from visionlab.errors import ParamsError

_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*):(.*)$")


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()
    return text.removesuffix("...").strip()


def _section_lines(lines: list[str], section: str) -> tuple[int, int]:
    """``(header, end)``: the section's header line and the index after its last content line."""
    header = next(
        (i for i, line in enumerate(lines) if (m := _TOP_KEY.match(line)) and m[1] == section), None
    )
    if header is None:
        raise ParamsError(f"params.yaml has no top-level {section}: section to add to")
    end = header + 1
    for i in range(header + 1, len(lines)):
        if _TOP_KEY.match(lines[i]):
            break
        if lines[i].strip() and not lines[i].lstrip().startswith("#"):
            end = i + 1
    return header, end


def add_entries(text: str, section: str, entries: dict[str, Any], comment: str = "") -> str:
    """``text`` with ``section.<name>: <value>`` added for each entry (one line each)."""
    lines = text.splitlines()
    header, end = _section_lines(lines, section)
    value = _TOP_KEY.match(lines[header])[2].split("#", 1)[0].strip()  # type: ignore[index]
    if value not in ("", "{}"):
        raise ParamsError(
            f"params.yaml: {section}: is written inline ({value}); write it as a block to add to it"
        )
    if value == "{}":
        lines[header] = lines[header].replace("{}", "", 1).rstrip()
    added = [f"  # {comment}"] if comment else []
    added += [f"  {name}: {_flow(entry)}" for name, entry in entries.items()]
    lines[end:end] = added
    return "\n".join(lines) + "\n"
