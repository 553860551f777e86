"""The MLflow store's check: the project's SQLite file, or a team's tracking server."""

from __future__ import annotations

import os
from pathlib import Path

from visionlab.doctor.check import FAIL, OK, WARN, Check

MLFLOW_STORE = "MLflow store"


def _check_mlflow(root: Path) -> Check:
    from visionlab.tracking import tracking_uri

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        return _check_sqlite_store(uri, root)
    if uri.startswith(("http://", "https://")):
        return _check_tracking_server(uri)
    return Check(MLFLOW_STORE, WARN, f"{uri}: not checked (only sqlite:/// and http(s):// stores are)")


def _check_sqlite_store(uri: str, root: Path) -> Check:
    """The project's own store: writable (SQLite writes a journal beside it) and readable as MLflow's."""
    name = MLFLOW_STORE
    store = Path(uri.removeprefix("sqlite:///"))
    if not store.exists():
        if os.access(store.parent if store.parent.exists() else root, os.W_OK):
            return Check(name, OK, f"{uri} (created by the first train stage)")
        return Check(
            name, FAIL, f"{store.parent} is not writable", "make it writable or set MLFLOW_TRACKING_URI"
        )
    if not (os.access(store, os.W_OK) and os.access(store.parent, os.W_OK)):
        return Check(
            name,
            FAIL,
            f"{store} or its folder is not writable",
            f"chmod u+w {store} {store.parent}, or set MLFLOW_TRACKING_URI",
        )
    import sqlite3

    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            count = db.execute("select count(*) from runs").fetchone()[0]
    except sqlite3.Error as exc:
        return Check(
            name,
            FAIL,
            f"{store} is not a readable MLflow store ({exc})",
            f"move {store} away; the next train stage creates a fresh one",
        )
    return Check(name, OK, f"{uri} ({count} runs)")


def _check_tracking_server(uri: str) -> Check:
    """A team's tracking server: it answers, lets this user in, and serves artifacts."""
    from visionlab.tracking.server import login_problem, probe, serves_artifacts

    name = MLFLOW_STORE
    reason = probe(uri)
    if reason is not None:
        return Check(
            name,
            FAIL,
            f"{uri}: {reason}",
            "start the tracking server (visionlab server), or unset MLFLOW_TRACKING_URI for the "
            "project's SQLite store",
        )
    refused = login_problem(uri)
    if refused is not None:
        return Check(
            name,
            FAIL,
            f"{uri}: {refused}",
            "export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (an admin creates users: "
            "docs/team-server.md)",
        )
    if not serves_artifacts(uri):
        return Check(
            name,
            WARN,
            f"{uri} answers but does not serve artifacts",
            "start it with --serve-artifacts (visionlab server does), or every client needs "
            "access to its artifact store",
        )
    return Check(name, OK, f"{uri} (artifacts served)")
