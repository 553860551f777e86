"""What dvc.yaml makes each stage depend on, and every `dvc exp run -S` line of the README and docs/,
read by DVC itself.

DVC's own parser (``dvc.repo.Repo``) and its own ``-S`` code (``dvc.utils.hydra.apply_overrides``)
run here, so a key DVC would refuse ("Key ... is not in struct") fails this test, not a user.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo
from dvc.utils.hydra import apply_overrides

from visionlab.params import load_params

ROOT = Path(__file__).resolve().parents[1]
PER_EXPERIMENT = ("featurize", "train", "evaluate", "explain")
PER_DATASET = ("download", "prepare", "augment")


def readme_exp_runs(pages: list[Path] | None = None) -> list[str]:
    """Every `dvc exp run` command line of the README and docs/*.md that sets params with -S."""
    lines = []
    for page in pages or [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text().replace("\\\n", " ")  # join continued lines
        for match in re.finditer(r"dvc exp run[^`\n]*", text):
            line = match.group(0).split("&&")[0].split(";")[0].split("#")[0].strip()
            # not prose such as `-S train.lr=...`, nor a shell loop's `train.seed=$seed`
            if " -S " in line and "..." not in line and "$" not in line:
                lines.append(line)
    return lines


def overrides_and_targets(line: str) -> tuple[list[str], list[str]]:
    words = shlex.split(line)[3:]  # after "dvc exp run"
    overrides, targets = [], []
    while words:
        word = words.pop(0)
        if word == "-S":
            overrides.append(words.pop(0))
        elif word in ("-n", "--name", "-j", "--jobs"):  # options that take a value
            words.pop(0)
        elif not word.startswith("-"):
            targets.append(word)
    return overrides, targets


def test_the_readme_has_override_examples():
    lines = readme_exp_runs([ROOT / "README.md"])
    assert any("++experiments." in line for line in lines), lines
    assert any("download.mirror=" in line for line in lines), lines
    quick = [line for line in lines if "prepare.max_per_class=" in line]
    assert quick and "explain@flowers-cnn" in quick[0], "the quick try names one chain"


@pytest.mark.parametrize("line", readme_exp_runs())
def test_every_readme_override_is_accepted_by_dvc_and_validates(line, tmp_path):
    overrides, targets = overrides_and_targets(line)
    params_file = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params_file)
    apply_overrides(params_file, overrides)  # raises as `dvc exp run -S` would
    params = load_params(params_file)
    for override in overrides:
        key, _, value = override.lstrip("+").partition("=")
        node = yaml.safe_load(params_file.read_text())
        for part in key.split("."):
            node = node[part]
        assert node == yaml.safe_load(value), override
    for target in targets:
        stage, _, name = target.partition("@")
        assert stage in PER_EXPERIMENT + PER_DATASET + ("report",), target
        known = params.experiments if stage in PER_EXPERIMENT else params.datasets
        assert not name or name in known, target
    if any(o.startswith("++experiments.") for o in overrides):
        assert targets, f"{line}: an experiment's override should name that experiment's stage"


@pytest.fixture(scope="module")
def stages() -> dict[str, object]:
    repo = Repo(str(ROOT))
    try:
        return {stage.addressing: stage for stage in repo.index.stages}
    finally:
        repo.close()


def _deps(stage) -> tuple[set[str], set[str]]:
    paths, params = set(), set()
    for dep in stage.deps:
        if hasattr(dep, "params"):
            params |= set(dep.params)
        else:
            paths.add(dep.def_path)
    return paths, params


def test_featurize_depends_only_on_what_changes_the_features(stages):
    params = load_params(ROOT / "params.yaml")
    for name, experiment in params.experiments.items():
        paths, keys = _deps(stages[f"featurize@{name}"])
        # No params at all: the resolve stage's record holds what changes the features
        # (tests/test_resolve.py), so a head, recipe or lr change keeps them.
        assert keys == set(), keys
        assert f"data/resolved/features/{name}.json" in paths
        uses_augmented = params.model_of(name).augmented
        assert (f"data/augmented/{experiment.dataset}" in paths) == uses_augmented, (name, paths)


def test_only_experiments_on_augmented_images_wait_for_augment(stages):
    params = load_params(ROOT / "params.yaml")
    prepared_only = [n for n in params.experiments if not params.model_of(n).augmented]
    assert prepared_only, "params.yaml has no experiment on the prepared images alone"
    for name, experiment in params.experiments.items():
        paths, _ = _deps(stages[f"train@{name}"])
        assert f"data/prepared/{experiment.dataset}" in paths
        assert (f"data/augmented/{experiment.dataset}" in paths) == params.model_of(name).augmented, name


def test_train_and_explain_depend_on_their_records_and_resolve_on_every_key_they_hold(stages):
    from visionlab.params import RUNTIME_KEYS, TrainParams

    shipped = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    # DVC reads these keys from params.yaml itself (resolve's params): every one must be written there.
    assert set(shipped) == set(TrainParams.model_fields)
    expected = {f"train.{key}" for key in TrainParams.model_fields if key not in RUNTIME_KEYS}
    _, resolve = _deps(stages["resolve"])
    assert {k for k in resolve if k.startswith("train")} == expected
    assert {"datasets", "experiments", "models", "recipes", "explain"} <= resolve
    # A new rendezvous per job, more loader workers: no retraining. More processes: a new global batch.
    assert {"train.rdzv_id", "train.num_workers", "train.resume"} & expected == set()
    assert {"train.nproc_per_node", "train.nnodes", "train.lr"} <= expected
    for name in load_params(ROOT / "params.yaml").experiments:
        for kind in ("train", "explain"):
            paths, keys = _deps(stages[f"{kind}@{name}"])
            # No params: an experiment need not spell out empty override maps for DVC, and the
            # records (tests/test_resolve.py) leave explain_overrides out of train's.
            assert keys == set(), (kind, name, keys)
            assert f"data/resolved/{kind}/{name}.json" in paths


def test_shipped_experiments_write_only_the_overrides_they_use():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())["experiments"]
    empty = sorted(
        f"{n}.{k}" for n, e in raw.items() for k, v in e.items() if k.endswith("_overrides") and not v
    )
    assert not empty, empty
