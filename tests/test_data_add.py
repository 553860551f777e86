"""`visionlab data add NAME PATH`: a folder of photos becomes a card (and experiments) in params.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import photo_folder
from visionlab.cli import main
from visionlab.errors import ParamsError
from visionlab.params import load_params, parse_params
from visionlab.params.yaml_edit import add_entries

REPO = Path(__file__).resolve().parents[1]


def _photos(root: Path, per_class: dict[str, int]) -> Path:
    return photo_folder(root, per_class, size=(80, 60))


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    target = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", target)
    return target


def _add(params_file: Path, *args: str):
    return CliRunner().invoke(main, ["data", "add", *args, "--params", str(params_file), "--workers", "1"])


def test_a_folder_becomes_a_card_and_like_experiments_keeping_every_comment(tmp_path, params_file):
    photos = _photos(tmp_path / "my_photos", {"cats": 11, "dogs": 10, "owls": 10})
    (photos / "dogs" / "broken.jpg").write_bytes((photos / "dogs" / "0.jpg").read_bytes()[:200])
    before = params_file.read_text()

    result = _add(params_file, "mine", str(photos), "--like", "flowers-best", "--like", "flowers-cnn")

    assert result.exit_code == 0, result.output
    assert f"{photos}: 31 usable images in 3 classes (class folders)" in result.stdout
    assert "dogs/broken.jpg: undecodable" in result.stdout
    assert "next: uv run dvc exp run explain@mine-best" in result.stdout
    params = load_params(params_file)
    card = params.dataset("mine")
    assert card.source.folder == str(photos) and params.folders == {"mine": str(photos)}
    assert card.classes == ["cats", "dogs", "owls"] and card.image_size == 32  # 60 px short sides
    best, cnn = params.experiment("mine-best"), params.experiment("mine-cnn")
    shipped = params.experiment("flowers-best")
    assert (best.dataset, best.model, best.recipe, best.train_images) == (
        "mine",
        shipped.model,
        shipped.recipe,
        shipped.train_images,
    )
    assert cnn.model == params.experiment("flowers-cnn").model
    after = params_file.read_text()
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert all(line in after.splitlines() for line in comments)  # not one comment lost
    assert after.startswith(before.split("datasets:")[0])


def test_dry_run_prints_the_card_and_writes_nothing(tmp_path, params_file):
    photos = _photos(tmp_path / "p", {"a": 10, "b": 10})
    before = params_file.read_bytes()

    result = _add(params_file, "mine", str(photos), "--dry-run", "--like", "flowers-best")

    assert result.exit_code == 0, result.output
    assert (
        "would add (--dry-run, nothing written)" in result.stdout and "experiments.mine-best" in result.stdout
    )
    assert params_file.read_bytes() == before


@pytest.mark.parametrize(
    ("layout", "name", "likes", "message"),
    [
        (
            {"a": 10, "b": 10},
            "flowers",
            (),
            "datasets.flowers exists already in params.yaml: choose another name",
        ),
        (
            {"a": 10, "b": 10},
            "my.photos",
            (),
            "'my.photos' cannot name a data set: use letters, digits, - and _",
        ),
        ({"only": 10}, "mine", (), "one class (only) found: a classifier needs two or more class folders"),
        (
            {"a": 10, "b": 10, "empty": 0},
            "mine",
            (),
            "class folder empty hold no usable image: add images or remove",
        ),
        (
            {"a": 10, "b": 10},
            "mine",
            ("flowers-bset",),
            "--like flowers-bset: no such experiment (did you mean 'flowers-best'?",
        ),
    ],
)
def test_each_refusal_says_what_to_change_and_writes_nothing(
    tmp_path, params_file, layout, name, likes, message
):
    photos = _photos(tmp_path / "p", {k: v for k, v in layout.items() if v})
    for label in (k for k, v in layout.items() if not v):
        (photos / label).mkdir()
    before = params_file.read_bytes()

    result = _add(params_file, name, str(photos), *[a for like in likes for a in ("--like", like)])

    assert result.exit_code == 1
    assert message in result.stderr
    assert params_file.read_bytes() == before


def test_a_like_experiment_whose_name_exists_is_refused(tmp_path, params_file):
    photos = _photos(tmp_path / "p", {"a": 10, "b": 10})
    before = params_file.read_bytes()
    clash = _add(params_file, "cifar", str(photos), "--like", "flowers-best")  # cifar-best is shipped
    assert (
        clash.exit_code == 1 and "--like flowers-best: experiments.cifar-best exists already" in clash.stderr
    )
    twice = _add(params_file, "mine", str(photos), "--like", "flowers-best", "--like", "caltech-best")
    assert twice.exit_code == 1
    assert "--like caltech-best would make experiments.mine-best as an earlier --like does" in twice.stderr
    assert params_file.read_bytes() == before


def test_a_folder_card_needs_its_folders_entry_and_the_same_path():
    def parsed(datasets, folders):
        raw = yaml.safe_load((REPO / "params.yaml").read_text())
        raw["datasets"].update(datasets)
        raw["folders"] = folders
        return parse_params(raw)

    card = {"source": {"folder": "/data/photos"}}
    with pytest.raises(
        ParamsError,
        match=r"datasets.mine.source.folder: DVC tracks a folder through the folders map: "
        r"add `folders: \{mine: /data/photos\}`",
    ):
        parsed({"mine": card}, {})
    with pytest.raises(ParamsError, match=r"folders.mine: '/data/other' is not datasets.mine.source.folder"):
        parsed({"mine": card}, {"mine": "/data/other"})
    with pytest.raises(ParamsError, match=r"folders.ghost: no data set 'ghost' with a folder source"):
        parsed({"mine": card}, {"mine": "/data/photos/", "ghost": "/x"})
    with pytest.raises(ParamsError, match=r"folders.mine: DVC does not expand ~: write the full path"):
        parsed({"mine": {"source": {"folder": "~/photos"}}}, {"mine": "~/photos"})
    with pytest.raises(ParamsError, match=r"a folder source takes no url, sha256"):
        parsed(
            {"mine": {"source": {"folder": "/p", "url": "http://x/a.tgz", "sha256": "0" * 64}}},
            {"mine": "/p"},
        )
    assert parsed({"mine": {"source": {"folder": "~/photos"}}}, {"mine": str(Path("~/photos").expanduser())})


def test_entries_go_at_the_end_of_their_section_and_an_empty_map_opens():
    text = "# top\na:\n  x: 1\n  # trailing comment\n\nb: {}\nc: 3\n"
    text = add_entries(text, "a", {"y": {"k": [1, 2]}}, "why")
    text = add_entries(text, "b", {"z": "/p q"})
    assert yaml.safe_load(text) == {"a": {"x": 1, "y": {"k": [1, 2]}}, "b": {"z": "/p q"}, "c": 3}
    assert text.index("# why") < text.index("y:") and "# trailing comment" in text
    with pytest.raises(ParamsError, match="no top-level d: section"):
        add_entries(text, "d", {"q": 1})


def test_plan_counts_a_folder_sources_images_before_prepare(tmp_path, params_file):
    from visionlab.training import plan_counts, planning

    photos = _photos(tmp_path / "p", {"a": 10, "b": 10})
    (photos / "a" / "notes.txt").write_text("not counted")
    assert _add(params_file, "mine", str(photos), "--like", "flowers-best").exit_code == 0
    params = load_params(params_file)

    counts = plan_counts.image_counts(params, "mine", tmp_path)
    assert (counts.train, counts.val, counts.test, counts.classes) == (14, 4, 2, 2) and not counts.measured
    assert planning.unavailable(params, "mine") is None
    shutil.rmtree(photos)
    assert f"its folder {photos} is not there" in planning.unavailable(params, "mine")


def test_doctor_names_a_moved_folder_and_what_to_change(tmp_path, params_file):
    from visionlab.doctor.project import FAIL, OK, _check_folders

    photos = _photos(tmp_path / "p", {"a": 10, "b": 10})
    assert _add(params_file, "mine", str(photos)).exit_code == 0
    params = load_params(params_file)
    assert [(c.name, c.status) for c in _check_folders(params)] == [("folder of mine", OK)]
    photos.rename(tmp_path / "moved")
    (check,) = _check_folders(params)
    assert check.status == FAIL and f"{photos} is not there (moved or removed?)" in check.detail
    assert "datasets.mine.source.folder and folders.mine" in check.fix
