"""Addresses made safe to log: the one place that knows what a credential in a URL looks like."""

from __future__ import annotations

import re


def redact(url: str) -> str:
    """The address without any ``user:password@`` part, for logs and records."""
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", url)
