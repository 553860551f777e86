"""One line of ``visionlab doctor``: what was checked, how it stands, and the fix."""

from __future__ import annotations

from dataclasses import dataclass

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name}: {self.detail}"
        return f"{text}  -> fix: {self.fix}" if self.fix and self.status != OK else text
