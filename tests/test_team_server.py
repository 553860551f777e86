"""`visionlab server` and the client side of a team tracking server, without starting one.

The real server on PostgreSQL runs in tests/integration/test_team.py; here: the command line it
builds, the database check, and the one clear error a stage gets from a server that is down.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from visionlab.cli import main
from visionlab.errors import VisionlabError
from visionlab.tracking import mlflow_run
from visionlab.tracking.server import (
    TrackingServerError,
    artifacts_destination,
    check_backend,
    probe,
    server_command,
    server_env,
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_server_command_serves_artifacts_and_keeps_the_password_out_of_argv():
    command = server_command("file:///srv/artifacts", host="0.0.0.0", port=5050, workers=2, extra=["--dev"])
    assert command[1:4] == ["-m", "mlflow", "server"]
    assert "--serve-artifacts" in command
    assert command[command.index("--artifacts-destination") + 1] == "file:///srv/artifacts"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "5050"
    assert command[command.index("--workers") + 1] == "2"
    assert command[-1] == "--dev"
    backend = "postgresql://lab:s3cret@db:5432/mlflow"
    assert not any("s3cret" in part for part in command)
    assert server_env(backend, {"PATH": "/bin"}) == {
        "PATH": "/bin",
        "MLFLOW_BACKEND_STORE_URI": backend,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # MLflow's GenAI job runner: 7 processes
    }
    asked = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true"}
    assert server_env(backend, asked)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"
    assert "--app-name" not in command
    with_auth = server_command("file:///a", auth=True)
    assert with_auth[with_auth.index("--app-name") + 1] == "basic-auth"


def test_auth_config_is_private_and_names_the_users_database(tmp_path):
    import stat

    from visionlab.tracking.server import auth_env

    backend = "postgresql://lab:s3cret@db:5432/mlflow"
    env = auth_env(backend, "EDIT", {"PATH": "/bin"}, folder=tmp_path)
    config = Path(env["MLFLOW_AUTH_CONFIG_PATH"])
    assert config.parent == tmp_path and stat.S_IMODE(config.stat().st_mode) == 0o600  # holds the password
    text = config.read_text()
    assert f"database_uri = {backend}" in text and "default_permission = EDIT" in text
    assert "admin_username = admin" in text and "admin_password" not in text  # from the environment
    assert len(env["MLFLOW_FLASK_SERVER_SECRET_KEY"]) == 64  # one CSRF key for every worker
    kept = auth_env(backend, "READ", {"MLFLOW_FLASK_SERVER_SECRET_KEY": "mine"}, folder=tmp_path)
    assert kept["MLFLOW_FLASK_SERVER_SECRET_KEY"] == "mine"
    with pytest.raises(VisionlabError, match="--default-permission WRITE: expected one of READ"):
        auth_env(backend, "WRITE", {}, folder=tmp_path)


def test_a_refusing_server_gets_a_line_that_says_how_to_log_in(monkeypatch):
    from mlflow.exceptions import MlflowException

    from visionlab.tracking.server import refusal_message

    uri = "http://mlflow-host:5000"
    unauthenticated = MlflowException(
        "API request to endpoint /api/2.0/mlflow/runs/create failed with "
        "error code 401 != 200. Response body: 'You are not authenticated.'"
    )
    assert "export MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in refusal_message(
        uri, unauthenticated
    )
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    denied = MlflowException(
        "API request to endpoint ... failed with error code 403 != 200. Permission denied"
    )
    assert refusal_message(uri, denied).startswith(f"MLflow tracking server {uri}: alice may not do this")
    assert refusal_message(uri, MlflowException("RESOURCE_DOES_NOT_EXIST")) is None


def test_artifacts_destination_makes_a_folder_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert artifacts_destination("store") == (tmp_path / "store").as_uri()
    assert (tmp_path / "store").is_dir()
    assert artifacts_destination("s3://bucket/mlflow") == "s3://bucket/mlflow"


def test_backend_that_does_not_answer_is_one_error_without_the_password():
    port = closed_port()
    expected = rf"cannot connect to the backend store .*:{port}/mlflow"
    with pytest.raises(TrackingServerError, match=expected) as exc:
        check_backend(f"postgresql://lab:s3cret@127.0.0.1:{port}/mlflow", timeout_s=5)
    assert "s3cret" not in str(exc.value)
    with pytest.raises(TrackingServerError, match="expected postgresql://"):
        check_backend("mongodb://127.0.0.1/mlflow")


def test_server_command_line_reports_a_bad_backend_in_one_line(tmp_path):
    port = closed_port()
    result = CliRunner().invoke(
        main,
        ["server", "--artifacts-destination", str(tmp_path / "a")],
        env={"VISIONLAB_SERVER_BACKEND": f"postgresql://lab:pw@127.0.0.1:{port}/mlflow"},
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot connect to the backend store"), result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert "pw@" not in result.output


def test_a_stage_gets_one_clear_error_at_once_from_a_server_that_is_down(monkeypatch):
    uri = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert probe(uri) is not None
    started = time.monotonic()
    with pytest.raises(TrackingServerError) as exc:
        mlflow_run.start_run("flowers", "flowers-cnn")
    assert time.monotonic() - started < 30  # MLflow's own retries would take minutes
    message = str(exc.value)
    assert message.startswith(f"MLflow tracking server {uri} (MLFLOW_TRACKING_URI): it does not answer")
    assert "unset MLFLOW_TRACKING_URI" in message and "visionlab server" in message


def test_doctor_fails_a_down_server_and_warns_one_without_served_artifacts(tmp_path, monkeypatch):
    from tests.http_server import serve
    from visionlab.doctor.store import FAIL, WARN, _check_mlflow

    down = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", down)
    check = _check_mlflow(tmp_path)
    assert check.status == FAIL and down in check.detail and "visionlab server" in check.fix
    (tmp_path / "health").write_text("OK")  # answers /health like MLflow, but no artifact API
    with serve(tmp_path) as (url, _):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        check = _check_mlflow(tmp_path)
    assert check.status == WARN and "does not serve artifacts" in check.detail, check
