"""benchmarks/paired.py: McNemar between full-scale rows, on each row's own per-image answers only."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _paired():
    spec = importlib.util.spec_from_file_location("paired", REPO / "benchmarks" / "paired.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pairs(paired, rows: list[dict], work: Path, stored: dict | None = None):
    """paired_rows on the answers gather_answers finds in ``work`` (and ``stored``)."""
    return paired.paired_rows(rows, paired.gather_answers(rows, work, stored)[0])


def _row(name: str, val: float, evaluated: str, dataset: str = "flowers") -> dict:
    return {
        "experiment": name,
        "dataset": dataset,
        "status": "done",
        "val_accuracy": val,
        "test_accuracy": 0.9,
        "provenance": {"stages": {f"evaluate@{name}": evaluated}},
    }


def _evaluated(
    work: Path,
    name: str,
    correct: list[bool],
    md5: str,
    lock: dict,
    val: list[bool] | None = None,
    copies: dict[str, list[bool]] | None = None,
) -> None:
    """A row's evaluate output: test answers (``copies``: a degraded or TTA copy's, by name) and
    validation's, recorded in ``lock`` as the row's own."""
    folder = work / "data" / "eval" / name
    folder.mkdir(parents=True)
    copies = copies or {}
    header = ",".join(["path", "correct", *(f"correct_{copy}" for copy in copies)])
    lines = [header] + [
        ",".join([f"img{i}.jpg", str(c), *(str(answers[i]) for answers in copies.values())])
        for i, c in enumerate(correct)
    ]
    (folder / "predictions.csv").write_text("\n".join(lines) + "\n")
    if val is not None:
        lines = ["path,correct"] + [f"val{i}.jpg,{c}" for i, c in enumerate(val)]
        (folder / "val_predictions.csv").write_text("\n".join(lines) + "\n")
    lock.setdefault("stages", {})[f"evaluate@{name}"] = {"outs": [{"path": f"data/eval/{name}", "md5": md5}]}


def test_the_chosen_row_is_tested_against_the_others_on_their_own_answers(tmp_path):
    paired = _paired()
    lock: dict = {}
    # 40 images: the chosen row alone right on 12, the other alone on 1 -> a difference beyond chance.
    chosen = [True] * 27 + [True] * 12 + [False]
    other = [True] * 27 + [False] * 12 + [True]
    _evaluated(tmp_path, "a", chosen, "h-a.dir", lock)
    _evaluated(tmp_path, "b", other, "h-b.dir", lock)
    _evaluated(tmp_path, "c", other, "h-new.dir", lock)  # a later run replaced c's recorded answers
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    rows = [_row("a", 0.95, "h-a.dir"), _row("b", 0.90, "h-b.dir"), _row("c", 0.80, "h-c.dir")]

    pairs, missing = _pairs(paired, rows, tmp_path)
    assert missing == ["c"]  # never compared on another run's answers
    (pair,) = pairs
    assert (pair["chosen"], pair["other"], pair["images"]) == ("a", "b", 40)
    assert (pair["both_right"], pair["only_chosen"], pair["only_other"], pair["both_wrong"]) == (27, 12, 1, 0)
    assert pair["mcnemar_p"] < 0.01
    text = paired.render(pairs, {"answers_gone": missing}, "abc123")
    assert "| flowers | validation | `a` | test | `b` | 40 | 27 | 12 | 1 |" in text and "| yes |" in text
    assert "Not compared, 1 row whose own evaluate outputs are gone from the work folder" in text
    assert text.rstrip().endswith("(rerun them to compare): `c`.")

    # The row chosen on validation leads, whichever tests higher.
    rows[1]["val_accuracy"] = 0.99
    (pair,) = _pairs(paired, rows, tmp_path)[0]
    assert (pair["chosen"], pair["only_chosen"], pair["only_other"]) == ("b", 1, 12)


def test_rows_on_another_test_split_are_not_paired(tmp_path):
    paired = _paired()
    lock: dict = {}
    _evaluated(tmp_path, "a", [True, False, True], "h-a.dir", lock)
    folder = tmp_path / "data" / "eval" / "u"
    folder.mkdir(parents=True)
    (folder / "predictions.csv").write_text(
        "path,correct\nother0.jpg,True\nother1.jpg,False\nimg2.jpg,True\n"
    )
    lock["stages"]["evaluate@u"] = {"outs": [{"path": "data/eval/u", "md5": "h-u.dir"}]}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    pairs, missing = _pairs(paired, [_row("a", 0.9, "h-a.dir"), _row("u", 0.8, "h-u.dir")], tmp_path)
    assert pairs == [] and missing == []


def test_the_row_chosen_for_degraded_photos_is_tested_on_each_degraded_copy(tmp_path):
    paired = _paired()
    lock: dict = {}
    for name, md5, jpeg in (
        ("plain", "h-p.dir", [False] * 10 + [True] * 30),
        ("robust", "h-r.dir", [True] * 40),
    ):
        _evaluated(tmp_path, name, [True] * 40, md5, lock, copies={"tta_hflip": [True] * 40, "jpeg_30": jpeg})
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    plain, robust = _row("plain", 0.96, "h-p.dir"), _row("robust", 0.95, "h-r.dir")
    plain["val_variants"], robust["val_variants"] = {"val_jpeg_30": 0.80}, {"val_jpeg_30": 0.93}

    pairs, missing = _pairs(paired, [plain, robust], tmp_path)
    assert missing == []
    clean, degraded = pairs  # the clean choice on plain images; the robust one on JPEG 30 only (no TTA)
    assert (clean["chosen"], clean["chosen_on"], clean["copy"], clean["mcnemar_p"]) == (
        "plain",
        "validation",
        "plain",
        1.0,
    )
    assert (degraded["chosen"], degraded["chosen_on"], degraded["copy"], degraded["other"]) == (
        "robust",
        "degraded validation",
        "jpeg_30",
        "plain",
    )
    assert (degraded["only_chosen"], degraded["only_other"]) == (10, 0) and degraded["mcnemar_p"] < 0.01
    assert "| flowers | degraded validation | `robust` | test, jpeg_30 | `plain` | 40 |" in paired.render(
        pairs, {}, "c"
    )


def test_the_clean_choice_is_also_tested_where_it_was_made_on_validation(tmp_path):
    """Rows 3 validation photos apart: chosen on validation, but not beyond chance there; a row
    evaluated before validation's answers were written gets its test pair alone."""
    paired = _paired()
    lock: dict = {}
    test = [True] * 30 + [False] * 10
    _evaluated(tmp_path, "a", test, "h-a.dir", lock, val=[True] * 17 + [True] * 3)
    _evaluated(tmp_path, "b", test, "h-b.dir", lock, val=[True] * 17 + [False] * 3)
    _evaluated(tmp_path, "c", test, "h-c.dir", lock)
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    rows = [_row("a", 1.0, "h-a.dir"), _row("b", 0.85, "h-b.dir"), _row("c", 0.80, "h-c.dir")]

    pairs, missing = _pairs(paired, rows, tmp_path)
    assert missing == []
    found = {(p["other"], p["copy"]): p for p in pairs}
    assert set(found) == {("b", "plain"), ("b", "validation"), ("c", "plain")}
    on_val = found[("b", "validation")]
    assert (on_val["images"], on_val["only_chosen"], on_val["only_other"]) == (20, 3, 0)
    assert on_val["mcnemar_p"] == 0.25  # 3 photos to none: a coin could do it
    assert found[("b", "plain")]["images"] == 40
    text = paired.render(pairs, {"answers_gone": missing}, "abc123")
    assert "| flowers | validation | `a` | validation | `b` | 20 | 17 | 3 | 0 | 0.25 | no |" in text


def test_earlier_pairs_stay_while_they_still_describe_the_rows(tmp_path):
    """A pair whose answers left the work folder is kept while its rows' recorded accuracies still
    give its counts and the chosen row is still the choice; a rerun row or a moved choice drops it."""
    paired = _paired()
    pair = {
        "dataset": "flowers",
        "chosen": "a",
        "chosen_on": "validation",
        "copy": "plain",
        "other": "b",
        "images": 40,
        "both_right": 27,
        "only_chosen": 12,
        "only_other": 1,
        "both_wrong": 0,
        "mcnemar_p": 0.003,
    }
    rows = [_row("a", 0.95, "h-a.dir"), _row("b", 0.90, "h-b.dir")]
    rows[0]["test_accuracy"], rows[1]["test_accuracy"] = 39 / 40, 28 / 40
    assert paired.carried_over([pair], [], rows) == [pair]
    assert paired.carried_over([pair], [{**pair, "mcnemar_p": 0.5}], rows) == []  # tested again today
    rerun = [rows[0], {**rows[1], "test_accuracy": 30 / 40}]
    assert paired.carried_over([pair], [], rerun) == []
    moved = [rows[0], {**rows[1], "val_accuracy": 0.99}]  # b now leads on validation
    assert paired.carried_over([pair], [], moved) == []


def test_a_degraded_copy_that_changed_no_answer_is_left_out_as_a_repeat_of_the_test_line(tmp_path):
    """32 px photos brought down to a 128 px short side are the photos as they are: that pair only
    repeats the plain one, so the file counts it instead of listing it; JPEG 30, which moved
    answers, stays."""
    paired = _paired()
    lock: dict = {}
    test = [True] * 30 + [False] * 10
    for name, md5, jpeg in (("a", "h-a.dir", [True] * 40), ("b", "h-b.dir", [False] * 10 + [True] * 30)):
        _evaluated(tmp_path, name, test, md5, lock, copies={"downscale_128": test, "jpeg_30": jpeg})
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    a, b = _row("a", 0.95, "h-a.dir"), _row("b", 0.90, "h-b.dir")
    a["val_variants"], b["val_variants"] = {"val_jpeg_30": 0.93}, {"val_jpeg_30": 0.80}

    pairs, _ = _pairs(paired, [a, b], tmp_path)
    assert {(p["copy"], p["repeats_plain"]) for p in pairs} == {
        ("plain", False),
        ("downscale_128", True),
        ("jpeg_30", False),
    }

    results = tmp_path / "results"
    results.mkdir()
    (results / "full_scale.json").write_text(json.dumps({"rows": [a, b]}))
    paired.main.main(["--work", str(tmp_path), "--results", str(results)], standalone_mode=False)
    written = json.loads((results / "paired.json").read_text())
    assert [p["copy"] for p in written["pairs"]] == ["plain", "jpeg_30"]
    assert written["repeats_plain"] == 1 and all("repeats_plain" not in p for p in written["pairs"])
    text = (results / "paired.md").read_text()
    assert "downscale_128" not in text.split("Left out")[0] and "Left out: 1 degraded-copy pair" in text


def _cache(work: Path, files: dict[str, str]) -> str:
    """``files`` (name -> text) as a directory output in ``work``'s DVC cache; its ``.dir`` md5."""
    cache = work / ".dvc" / "cache" / "files" / "md5"
    entries = []
    for name, text in files.items():
        md5 = hashlib.md5(text.encode()).hexdigest()
        (cache / md5[:2]).mkdir(parents=True, exist_ok=True)
        (cache / md5[:2] / md5[2:]).write_text(text)
        entries.append({"md5": md5, "relpath": name})
    manifest = json.dumps(entries)
    directory = hashlib.md5(manifest.encode()).hexdigest() + ".dir"
    (cache / directory[:2]).mkdir(parents=True, exist_ok=True)
    (cache / directory[:2] / directory[2:]).write_text(manifest)
    return directory


def test_a_row_whose_folder_a_later_seed_replaced_is_read_from_dvcs_cache(tmp_path):
    """Seed 43's evaluate replaced the folder's answers; the row records seed 42's output, which
    DVC's cache still holds: the pair is tested on those, and a row gone from both is not compared,
    named with why; a row whose answers are here but whose data set's choice's are not, too."""
    paired = _paired()
    lock: dict = {}
    _evaluated(tmp_path, "a", [True] * 40, "h-seed43.dir", lock)  # the folder: a later seed's answers
    seed42 = ["path,correct"] + [f"img{i}.jpg,{i >= 12}" for i in range(40)]
    recorded = _cache(tmp_path, {"predictions.csv": "\n".join(seed42) + "\n", "metrics.json": "{}"})
    _evaluated(tmp_path, "b", [True] * 39 + [False], "h-b.dir", lock)
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    rows = [_row("a", 0.95, recorded), _row("b", 0.90, "h-b.dir"), _row("c", 0.80, "h-gone.dir")]
    rows += [
        _row("u1", 0.9, "h-gone1.dir", "flowers_uncurated"),
        _row("u2", 0.8, "h-u2.dir", "flowers_uncurated"),
    ]
    _evaluated(tmp_path, "u2", [True] * 40, "h-u2.dir", lock)
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))

    pairs, missing = _pairs(paired, rows, tmp_path)
    (pair,) = pairs
    assert (pair["chosen"], pair["other"], pair["only_chosen"], pair["only_other"]) == (
        "a",
        "b",
        1,
        12,
    )  # seed 42's answers
    assert missing == ["c", "u1"]
    assert paired.not_compared(rows, pairs, missing) == {
        "answers_gone": ["c", "u1"],
        "no_chosen_answers": ["u2"],
    }
    alone = [_row("solo", 0.9, "h-solo.dir", "caltech101_5")]  # a data set's only row: nothing to compare
    assert paired.not_compared(rows + alone, pairs, [*missing, "solo"])["answers_gone"] == ["c", "u1"]


def _answer_bits():
    return _paired().answer_bits  # benchmarks/answer_bits.py, as paired.py imports it


def test_answers_read_back_from_bits_line_up_by_image_whatever_order_they_were_written_in():
    import pandas as pd

    bits = _answer_bits()
    paths = [f"img{i}.jpg" for i in range(21)]  # not a multiple of 8: the last byte is padded
    right = [i % 3 != 0 for i in range(21)]
    first = pd.DataFrame({"plain": right, "jpeg_30": [not r for r in right]}, index=paths)
    shuffled = first.iloc[::-1]  # the same answers, listed in another order
    val = pd.Series([True, False], index=["v0.jpg", "v1.jpg"], name="validation")
    encoded = bits.encode(first.join(val, how="outer"))
    assert encoded["plain"]["images"] == 21 and encoded["validation"]["images"] == 2
    assert encoded["plain"]["paths_sha256"] == encoded["jpeg_30"]["paths_sha256"]
    assert encoded["plain"]["paths_sha256"] != encoded["validation"]["paths_sha256"]
    back, again = bits.decode(encoded), bits.canonical(shuffled)
    plain = back["plain"].dropna()
    assert len(plain) == 21 and int(plain.astype(bool).sum()) == sum(right)
    assert (again["plain"].reindex(plain.index) == plain).all()  # same images, same positions
    assert back["validation"].dropna().astype(bool).tolist() == [True, False]
    encoded["plain"]["images"] = 40  # more images than bits stored: a damaged store is refused
    try:
        bits.decode(encoded)
    except ValueError as exc:
        assert "plain" in str(exc)
    else:
        raise AssertionError("a store with too few bits was read")


def test_committed_answers_test_the_pairs_again_once_the_work_folder_has_lost_them(tmp_path):
    """paired.py commits the answers it read; run again where the evaluate outputs are gone, it
    tests the same pairs from them, but never a rerun row's earlier answers."""
    paired = _paired()
    work, results = tmp_path / "work", tmp_path / "results"
    results.mkdir()
    lock: dict = {}
    _evaluated(work, "a", [True] * 39 + [False], "h-a.dir", lock, val=[True] * 8 + [False] * 2)
    _evaluated(work, "b", [i >= 12 for i in range(40)], "h-b.dir", lock, val=[True] * 5 + [False] * 5)
    (work / "dvc.lock").write_text(yaml.safe_dump(lock))
    rows = [_row("a", 0.95, "h-a.dir"), _row("b", 0.90, "h-b.dir")]
    (results / "full_scale.json").write_text(json.dumps({"rows": rows}))
    run = ["--work", str(work), "--results", str(results)]
    paired.main.main(run, standalone_mode=False)
    first = json.loads((results / "paired.json").read_text())["pairs"]
    assert [(p["copy"], p["only_chosen"], p["only_other"]) for p in first] == [
        ("plain", 12, 1),
        ("validation", 3, 0),
    ]
    stored = json.loads((results / "answers.json").read_text())["rows"]
    assert set(stored) == {"a", "b"} and stored["a"]["evaluate"] == "h-a.dir"

    (results / "paired.json").unlink()  # no earlier pairs to carry over: tested from the store alone
    for name in ("a", "b"):
        for file in (work / "data" / "eval" / name).iterdir():
            file.unlink()
    (work / "dvc.lock").unlink()
    paired.main.main(run, standalone_mode=False)
    assert json.loads((results / "paired.json").read_text())["pairs"] == first

    rows[1]["provenance"]["stages"]["evaluate@b"] = "h-b-rerun.dir"  # b reran; its answers are gone
    (results / "full_scale.json").write_text(json.dumps({"rows": rows}))
    paired.main.main(run, standalone_mode=False)
    written = json.loads((results / "paired.json").read_text())
    assert written["pairs"] == [] and written["not_compared"]["answers_gone"] == ["b"]
    assert set(json.loads((results / "answers.json").read_text())["rows"]) == {"a"}


def test_a_damaged_answers_store_stops_the_run_naming_the_row_and_the_fix(tmp_path):
    import click
    import pytest

    paired = _paired()
    work, results = tmp_path / "work", tmp_path / "results"
    work.mkdir()
    results.mkdir()
    rows = [_row("a", 0.95, "h-a.dir"), _row("b", 0.90, "h-b.dir")]
    (results / "full_scale.json").write_text(json.dumps({"rows": rows}))
    run = ["--work", str(work), "--results", str(results)]
    damaged = {"a": {"evaluate": "h-a.dir", "copies": {"plain": {"images": 40, "right": "not base64!"}}}}
    (results / "answers.json").write_text(json.dumps({"commit": "abc", "rows": damaged}))
    with pytest.raises(click.ClickException, match=r"answers.json: a: plain: unreadable.*restore the file"):
        paired.main.main(run, standalone_mode=False)
    (results / "answers.json").write_text("{not json")
    with pytest.raises(click.ClickException, match="not an answers store.*restore it with git"):
        paired.main.main(run, standalone_mode=False)


def test_the_committed_answers_give_each_rows_recorded_accuracy():
    """benchmarks/results/answers.json against full_scale.json: each stored row's right answers on
    the test images, each copy and validation are the accuracies the row recorded."""
    paired, bits = _paired(), _answer_bits()
    results = REPO / "benchmarks" / "results"
    rows = {r["experiment"]: r for r in json.loads((results / "full_scale.json").read_text())["rows"]}
    stored = bits.load(results)
    gone = json.loads((results / "paired.json").read_text())["not_compared"]["answers_gone"]
    assert stored and not set(gone) & set(stored), "paired.md calls stored answers gone"
    checked = 0
    for name, entry in stored.items():
        row = rows[name]
        assert entry["evaluate"] == paired._recorded(row), f"{name}: stored answers of another run"
        for copy, answers in bits.decode(entry["copies"]).items():
            known = answers.dropna().astype(bool)
            recorded = paired._right(row, copy, len(known))
            if recorded is not None:
                assert int(known.sum()) == recorded, f"{name}, {copy}"
                checked += 1
        assert "plain" in entry["copies"], name
    assert checked >= 2 * len(stored)
