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


def test_a_project_copy_takes_its_files_and_folders_and_leaves_out_files_an_older_revision_lacks(tmp_path):
    source = tmp_path / "old-revision"
    for name in paths.PROJECT_FILES:
        if name != "data/folders/README.md":  # added after this revision
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_text(name)
    for name in paths.PROJECT_DIRS:
        (source / name / "__pycache__").mkdir(parents=True)
        (source / name / "kept.txt").write_text(name)
        (source / name / "__pycache__" / "x.pyc").write_text("bytecode")
    copy = paths.copy_project(source, tmp_path / "copy")
    assert (copy / "dvc.yaml").read_text() == "dvc.yaml" and not (copy / "data/folders/README.md").exists()
    assert all((copy / name / "kept.txt").is_file() for name in paths.PROJECT_DIRS)
    assert not any(copy.rglob("__pycache__"))
