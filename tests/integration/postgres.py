"""A throw-away PostgreSQL server from Debian's binaries, for the team-server test.

PostgreSQL refuses to run as root, so under root the cluster belongs to ``nobody`` and lives in a
folder ``nobody`` owns (pytest's own tmp folders are private to root). Trust authentication on
127.0.0.1 only; ``fsync=off``: the data is thrown away anyway.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

USER = "visionlab"
DATABASE = "mlflow"


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def require_postgres() -> Path:
    found = postgres_bin()
    if found is None:
        message = "PostgreSQL is not installed (apt-get install postgresql; .ci/run does this)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a cluster with one empty database; yields its SQLAlchemy URI."""
    bin_dir = require_postgres()
    folder = Path(tempfile.mkdtemp(prefix="visionlab-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    port = free_port()
    data = folder / "data"

    def pg(tool: str, *args: str) -> None:
        result = subprocess.run(
            [*as_user, str(bin_dir / tool), *args], capture_output=True, text=True, timeout=120, check=False
        )
        log = folder / "server.log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        assert result.returncode == 0, f"{tool} failed:\n{result.stdout}{result.stderr}\n{tail}"

    try:
        pg("initdb", "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        pg("pg_ctl", "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start")
        try:
            pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE)
            yield f"postgresql://{USER}@127.0.0.1:{port}/{DATABASE}"
        finally:
            pg("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
