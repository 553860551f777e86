"""Leaving a finished command without the interpreter's teardown.

With torch and timm loaded (timm pulls in torchvision and, through it, torch._dynamo and triton),
Python's own shutdown takes about 1.1 s on this 2-core machine: module by module, object by object,
after the command has printed and saved everything. A command whose work holds nothing that needs
finalising (no open run, no temporary folder, no child process) asks for :func:`request`, and the
``visionlab`` script (:func:`visionlab.cli.run`) then ends the process at once with the command's
exit code. Commands invoked in-process (click's test runner, another program) exit normally.
"""

from __future__ import annotations

import os
import sys

_requested = False


def request() -> None:
    """Ask the console script to skip the teardown once this command has returned."""
    global _requested
    _requested = True


def requested() -> bool:
    return _requested


def code_of(exc: SystemExit) -> int:
    """The process exit code ``SystemExit`` carries, as ``sys.exit`` maps it."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)  # sys.exit("message") prints it and exits 1
    return 1


def leave(exc: SystemExit) -> None:
    """End the process now with ``exc``'s code, its output flushed first."""
    code = code_of(exc)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
