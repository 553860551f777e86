from visionlab import paths


def test_project_root_sees_through_dvc_temporary_copies(tmp_path, monkeypatch):
    monkeypatch.delenv("VISIONLAB_PROJECT_ROOT", raising=False)
    project = tmp_path / "proj"
    copy = project / ".dvc" / "tmp" / "exps" / "tmpabc123"
    (copy / "stages").mkdir(parents=True)
    (project / "dvc.yaml").write_text("stages: {}\n")
    (copy / "dvc.yaml").write_text("stages: {}\n")
    assert paths.workspace_root(copy / "stages") == copy
    assert paths.project_root(copy / "stages") == project
    assert paths.project_root(project) == project


def test_tracking_uri_is_absolute_and_overridable(tmp_path, monkeypatch):
    from visionlab.tracking import tracking_uri

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("VISIONLAB_PROJECT_ROOT", raising=False)
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000"
