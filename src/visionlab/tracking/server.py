"""A team MLflow tracking server: runs and the model registry in PostgreSQL, artifacts served by MLflow.

The server proxies artifact uploads and downloads (``--serve-artifacts``), so clients need only
``MLFLOW_TRACKING_URI=http://host:port``: no database password, no storage credentials. This
module builds the ``mlflow server`` command line, checks the database before starting it, and
probes a running server for the stages and ``visionlab doctor``.
"""

from __future__ import annotations

import os
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
    auth: bool = False,
) -> list[str]:
    """``mlflow server`` with served artifacts and the address; the backend goes in :func:`server_env`.

    ``auth``: MLflow's basic-auth app (every request needs a user; :func:`auth_env` configures it).
    """
    command = [sys.executable, "-m", "mlflow", "server"]
    command += ["--serve-artifacts", "--artifacts-destination", artifacts]
    command += ["--host", host, "--port", str(port)]
    if workers is not None:
        command += ["--workers", str(workers)]
    if auth:
        command += ["--app-name", "basic-auth"]
    return command + list(extra)


def server_env(backend_store_uri: str, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus the backend store, passed in the environment so its password stays out of `ps`.

    MLflow's job runner for its GenAI features (7 consumer processes) stays off unless
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION asks for it: image classification never uses it.
    """
    return {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        **base,
        "MLFLOW_BACKEND_STORE_URI": backend_store_uri,
    }


PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")


def auth_env(
    database_uri: str, default_permission: str, base: Mapping[str, str], folder: Path | None = None
) -> dict[str, str]:
    """The environment of a basic-auth server: its config file, and a CSRF key every worker shares.

    The config (users and permissions in ``database_uri``: the backend's PostgreSQL database works,
    the auth tables keep their own migration history) is written readable by its owner alone, as it
    may hold the database password. ``default_permission`` is what a logged-in user may do on
    experiments and models others created: EDIT lets the team log into shared experiments;
    deleting and granting stay with each resource's owner (MANAGE) and admins.
    """
    if default_permission not in PERMISSIONS:
        raise VisionlabError(
            f"--default-permission {default_permission}: expected one of {', '.join(PERMISSIONS)}"
        )
    import secrets
    import tempfile

    handle, name = tempfile.mkstemp(prefix="visionlab-auth-", suffix=".ini", dir=folder)
    config = Path(name)  # mkstemp: mode 0600
    with open(handle, "w", encoding="utf-8") as out:
        out.write(
            "[mlflow]\n"
            f"default_permission = {default_permission}\n"
            f"database_uri = {database_uri}\n"
            f"admin_username = {base.get('MLFLOW_AUTH_ADMIN_USERNAME') or 'admin'}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
    env = {**base, "MLFLOW_AUTH_CONFIG_PATH": str(config)}
    # A key generated here is the same in every worker of this server, but not across restarts
    # (logged-in browser sessions then sign in again): export one to keep it.
    env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
    return env


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


def login_problem(uri: str, timeout_s: float = HEALTH_TIMEOUT_S) -> str | None:
    """Why a server that answers refuses this client's requests (a basic-auth server), or None."""
    import requests

    try:
        answer = requests.get(
            uri.rstrip("/") + "/api/2.0/mlflow/experiments/search",
            params={"max_results": 1},
            timeout=timeout_s,
            auth=credentials(),
        )
    except requests.RequestException as exc:
        return f"it does not answer ({type(exc).__name__})"
    if answer.status_code == 401:
        who = "the login in MLFLOW_TRACKING_USERNAME/PASSWORD" if credentials() else "no login"
        return f"it asks for a login and refused {who} (HTTP 401)"
    if answer.status_code == 403:
        return "it refused this user (HTTP 403)"
    return None


def serves_artifacts(uri: str, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
    """Whether the server proxies artifacts (clients then need no storage credentials)."""
    import requests

    try:
        answer = requests.get(
            uri.rstrip("/") + "/api/2.0/mlflow-artifacts/artifacts", timeout=timeout_s, auth=credentials()
        )
    except requests.RequestException:
        return False
    return answer.status_code == 200


def refusal_message(uri: str, exc: BaseException) -> str | None:
    """One actionable line when a basic-auth server refused a request (401, 403); else None."""
    text = str(exc)
    code = getattr(exc, "error_code", "")
    if code == "UNAUTHENTICATED" or "error code 401" in text or "401 Client Error" in text:
        return login_message(uri)
    if code == "PERMISSION_DENIED" or "error code 403" in text or "403 Client Error" in text:
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "this user")
        return (
            f"MLflow tracking server {uri}: {user} may not do this (HTTP 403): ask an admin for EDIT "
            "on the data set's experiment and its registered model, then rerun `dvc repro`"
        )
    return None


def login_message(uri: str) -> str:
    return (
        f"MLflow tracking server {uri} (MLFLOW_TRACKING_URI) asks for a login: export "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (an admin creates users: "
        "docs/team-server.md), then rerun `dvc repro`: finished stages are kept"
    )


def credentials() -> tuple[str, str] | None:
    """The login the MLflow client would send (MLFLOW_TRACKING_USERNAME/PASSWORD), for our own probes."""
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    return (user, password) if user and password else None


def unavailable_message(uri: str, reason: str) -> str:
    return (
        f"MLflow tracking server {uri} (MLFLOW_TRACKING_URI): {reason}. Start it "
        "(`uv run visionlab server ...`, docs/team-server.md) or unset MLFLOW_TRACKING_URI to log "
        "to the project's mlflow.db, then rerun `dvc repro`: finished stages are kept and not redone"
    )


def require_server(uri: str) -> None:
    """Raise one clear error when the tracking server at ``uri`` is down."""
    reason = probe(uri)
    if reason is not None:
        raise TrackingServerError(unavailable_message(uri, reason))
    refused = login_problem(uri)
    if refused is not None and "HTTP 401" in refused:
        raise TrackingServerError(login_message(uri))
