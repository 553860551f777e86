"""A team MLflow tracking server: runs and the model registry in PostgreSQL, artifacts served by MLflow.

The server proxies artifact uploads and downloads (``--serve-artifacts``), so clients need only
``MLFLOW_TRACKING_URI=http://host:port``: no database password, no storage credentials. This
module builds the ``mlflow server`` command line, checks the database before starting it, and
probes a running server for the stages and ``visionlab doctor``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from visionlab.errors import VisionlabError
from visionlab.redaction import redact

HEALTH_TIMEOUT_S = 5.0


class TrackingServerError(VisionlabError):
    """The tracking server or its database does not answer."""


def artifacts_destination(value: str) -> str:
    """A local folder becomes an absolute ``file://`` URI (MLflow needs one); others pass through."""
    if "://" in value:
        return value
    folder = Path(value).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder.as_uri()


def server_command(
    artifacts: str,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """``mlflow server`` with served artifacts and the address; the backend goes in :func:`server_env`."""
    command = [sys.executable, "-m", "mlflow", "server"]
    command += ["--serve-artifacts", "--artifacts-destination", artifacts]
    command += ["--host", host, "--port", str(port)]
    if workers is not None:
        command += ["--workers", str(workers)]
    return command + list(extra)


def server_env(backend_store_uri: str, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus the backend store, passed in the environment so its password stays out of `ps`."""
    return {**base, "MLFLOW_BACKEND_STORE_URI": backend_store_uri}


def check_backend(uri: str, timeout_s: int = 10) -> None:
    """Connect to the backend store once, so a wrong URI fails here with one message, not in MLflow."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0]
    if scheme != "postgresql":
        if scheme in ("mysql", "mssql", "sqlite"):
            return  # MLflow supports them; we only check the database we document
        raise TrackingServerError(
            f"--backend-store-uri {redact(uri)}: expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
        )
    try:
        import psycopg  # SQLAlchemy 2.1's default PostgreSQL driver, so MLflow's too
    except ImportError as exc:
        raise TrackingServerError(
            "the PostgreSQL driver is not installed: uv sync --extra team (or pip install 'psycopg[binary]')"
        ) from exc
    # psycopg takes libpq URIs: drop SQLAlchemy's "+psycopg" driver suffix.
    dsn = "postgresql://" + uri.split("://", 1)[1]
    try:
        psycopg.connect(dsn, connect_timeout=timeout_s).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingServerError(f"cannot connect to the backend store {redact(uri)}: {reason}") from exc


def probe(uri: str, timeout_s: float = HEALTH_TIMEOUT_S) -> str | None:
    """Why the tracking server at ``uri`` cannot be used, or None when it answers."""
    import requests

    try:
        answer = requests.get(uri.rstrip("/") + "/health", timeout=timeout_s)
    except requests.RequestException as exc:
        return f"it does not answer ({type(exc).__name__})"
    if answer.status_code != 200:
        return f"{uri}/health answered HTTP {answer.status_code}"
    return None


def serves_artifacts(uri: str, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
    """Whether the server proxies artifacts (clients then need no storage credentials)."""
    import requests

    try:
        answer = requests.get(uri.rstrip("/") + "/api/2.0/mlflow-artifacts/artifacts", timeout=timeout_s)
    except requests.RequestException:
        return False
    return answer.status_code == 200


def unavailable_message(uri: str, reason: str) -> str:
    return (
        f"MLflow tracking server {uri} (MLFLOW_TRACKING_URI): {reason}. Start it "
        "(`uv run visionlab server ...`, README 'A team server') or unset MLFLOW_TRACKING_URI to log "
        "to the project's mlflow.db, then rerun `dvc repro`: finished stages are kept and not redone"
    )


def require_server(uri: str) -> None:
    """Raise one clear error when the tracking server at ``uri`` is down."""
    reason = probe(uri)
    if reason is not None:
        raise TrackingServerError(unavailable_message(uri, reason))
