"""Are two full-scale rows on the same test split different beyond chance? McNemar's exact test.

Per data set, the row chosen on validation (as in full_scale.md) against every other row whose test
images are the same, on the images exactly one of the two gets right; and the row chosen on its
worst degraded validation copy (the glance's row for smaller, re-encoded photos) against the others
on each degraded test copy both have answers for (evaluate writes them beside the plain ones in
predictions.csv: ``correct_jpeg_30``, ...). The per-image answers are each row's own: the work
folder's `data/eval/<experiment>/predictions.csv`, used only where the folder's `dvc.lock` still
holds the evaluate output the row recorded, else the copy of that output in the folder's DVC cache
(a later run or seed replaces the folder's, not the cache's), else the copy of its answers this
script committed in `benchmarks/results/answers.json` when it last read them (answer_bits.py: a bit
per image, so the pairs can be tested again on any machine). The validation pairs
(``val_predictions.csv``) test whether the clean choice beat each other row where it was made. A
pair tested on an earlier run stays in the file while it still describes today's rows (the same
choice, and both rows' recorded accuracies give its counts). Rows in no pair are listed as not
compared, with why: their answers are gone (rerun them to compare), or their data set's chosen
rows' are. A degraded copy that changed no answer of either row (32 px photos brought down to
128 px are the photos as they are) would only repeat the pair's test line: it is counted, not
listed.

    uv run python benchmarks/paired.py --work WORK
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import answer_bits
from full_scale_verdicts import chosen_for_degraded, chosen_on_validation, is_degraded
from provenance import source_commit, write_result

from visionlab.evaluation.answers import PREDICTIONS, VAL_PREDICTIONS, cached_files, read_answers
from visionlab.evaluation.intervals import mcnemar

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def locked_stages(work: Path) -> dict[str, Any]:
    """The work folder's dvc.lock stages (none before it ran anything)."""
    lock_file = work / "dvc.lock"
    if not lock_file.is_file():
        return {}
    return (yaml.safe_load(lock_file.read_text()) or {}).get("stages") or {}


PLAIN = "plain"  # the test images as they are: predictions.csv's ``correct``
VALIDATION = "validation"  # the validation images, where the choice was made: val_predictions.csv


def own_files(work: Path, stages: dict[str, Any], row: dict[str, Any]) -> dict[str, Path] | None:
    """The row's own evaluate files by name: the work folder's, while its `dvc.lock` still holds the
    output the row recorded, else DVC's cache copy of that output (a later seed or rerun replaced
    the folder, not the cache); None once both are gone."""
    stage = f"evaluate@{row['experiment']}"
    recorded = _recorded(row)
    if recorded is None:
        return None
    outs = stages.get(stage, {}).get("outs", [])
    folder = f"data/eval/{row['experiment']}"
    if any(out.get("path") == folder and out.get("md5") == recorded for out in outs):
        return {path.name: path for path in (work / folder).iterdir()}
    return cached_files(work / ".dvc" / "cache" / "files" / "md5", recorded)


def row_answers(work: Path, stages: dict[str, Any], row: dict[str, Any]) -> pd.DataFrame | None:
    """Image path -> right or wrong, a column per copy: the test images (``plain``, then each
    degraded or TTA copy evaluate answered) and, where evaluate wrote them, the validation images
    (``VALIDATION``), from the row's own evaluate output; None if it is gone."""
    files = own_files(work, stages, row)
    if files is None:
        return None
    table = pd.read_csv(files[PREDICTIONS]).set_index("path")
    copies = {column: column.removeprefix("correct_") for column in table if column.startswith("correct_")}
    answers = table[["correct", *copies]].rename(columns={"correct": PLAIN, **copies}).astype(bool)
    # None for rows evaluated before validation's answers were written
    val = read_answers(files[VAL_PREDICTIONS]) if VAL_PREDICTIONS in files else None
    if val is not None:
        answers = answers.join(val.rename(VALIDATION), how="outer")
    return answers


def compare(chosen: pd.Series, other: pd.Series) -> dict[str, Any] | None:
    """The pair's counts and McNemar's p on the images both answered; None if they answered other
    images (another split)."""
    mine, theirs = chosen.dropna().astype(bool), other.dropna().astype(bool)
    if not len(mine) or set(mine.index) != set(theirs.index):
        return None
    theirs = theirs.reindex(mine.index)
    return {
        "images": len(mine),
        "both_right": int((mine & theirs).sum()),
        "only_chosen": int((mine & ~theirs).sum()),
        "only_other": int((theirs & ~mine).sum()),
        "both_wrong": int((~mine & ~theirs).sum()),
        "mcnemar_p": mcnemar(list(mine), list(theirs)),
    }


def _choices(done: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], str]]:
    """(data set, chosen row, what it was chosen on): the clean choice, compared on the plain test
    images, and the choice for degraded photos, compared on the degraded copies."""
    choices = [(d, row, "validation") for d, row in chosen_on_validation(done, published_only=False).items()]
    choices += [(d, row, "degraded validation") for d, row in chosen_for_degraded(done).items()]
    return sorted(choices, key=lambda choice: choice[0])


def _recorded(row: dict[str, Any]) -> str | None:
    """The evaluate output the row recorded (its md5), if it recorded one."""
    return ((row.get("provenance") or {}).get("stages") or {}).get(f"evaluate@{row['experiment']}")


def gather_answers(
    rows: list[dict[str, Any]], work: Path, stored: dict[str, dict[str, Any]] | None = None
) -> tuple[dict[str, pd.DataFrame | None], dict[str, dict[str, Any]]]:
    """Each finished row's answers (as answer_bits reads them back), and the store to commit.

    A row's own evaluate output wins; where it is gone, the committed copy of that same output
    (``stored``, matched by the md5 the row recorded). A stored row that no longer matches its row
    (rerun since, or gone from the table) is dropped from the store.
    """
    stages = locked_stages(work)  # read once: it names every row's evaluate output
    answers: dict[str, pd.DataFrame | None] = {}
    store: dict[str, dict[str, Any]] = {}
    for row in (r for r in rows if r.get("status") == "done"):
        name, recorded = row["experiment"], _recorded(row)
        found = row_answers(work, stages, row)
        if found is not None:
            store[name] = {"evaluate": recorded, "copies": answer_bits.encode(found)}
        elif recorded is not None and (stored or {}).get(name, {}).get("evaluate") == recorded:
            store[name] = stored[name]
        answers[name] = _decoded(name, store[name]) if name in store else None
    return answers, store


def _decoded(name: str, stored: dict[str, Any]) -> pd.DataFrame:
    """A row's answers from the store; a damaged entry stops the run naming the row and the fix."""
    try:
        return answer_bits.decode(stored["copies"])
    except (KeyError, TypeError, ValueError) as exc:
        raise click.ClickException(
            f"{answer_bits.STORE}: {name}: {exc}; restore the file with git, or rerun the row"
        ) from None


def paired_rows(
    rows: list[dict[str, Any]], answers: dict[str, pd.DataFrame | None]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every comparison with each data set's chosen rows, and the rows that could not be compared."""
    done = [r for r in rows if r.get("status") == "done"]
    missing = sorted(name for name, found in answers.items() if found is None)
    pairs = []
    for dataset, chosen, chosen_on in _choices(done):
        mine = answers.get(chosen["experiment"])
        if mine is None:
            continue
        for other in done:
            theirs = answers.get(other["experiment"])
            if other is chosen or other["dataset"] != dataset or theirs is None:
                continue
            # The clean choice on test, and on validation: was the choice itself beyond chance?
            wanted = [PLAIN, VALIDATION] if chosen_on == "validation" else [c for c in mine if is_degraded(c)]
            for copy in (c for c in wanted if c in mine and c in theirs):
                compared = compare(mine[copy], theirs[copy])
                if compared is None:
                    continue  # another split: not paired
                pair = {
                    "dataset": dataset,
                    "chosen": chosen["experiment"],
                    "chosen_on": chosen_on,
                    "copy": copy,
                    "other": other["experiment"],
                    **compared,
                }
                pair["repeats_plain"] = repeats_plain(pair, pairs, mine, theirs)
                pairs.append(pair)
    return pairs, missing


def repeats_plain(
    pair: dict[str, Any], pairs: list[dict[str, Any]], mine: pd.DataFrame, theirs: pd.DataFrame
) -> bool:
    """Whether a degraded copy's pair only repeats the plain test pair of the same two rows, listed
    before it: the copy changed no answer of either row (a 128 px downscale of 32 px photos is the
    photos as they are)."""
    copy = pair["copy"]
    if copy in (PLAIN, VALIDATION):
        return False
    listed = any(
        (p["chosen"], p["other"], p["copy"]) == (pair["chosen"], pair["other"], PLAIN) for p in pairs
    )
    return listed and all(_same(table[copy], table[PLAIN]) for table in (mine, theirs))


def _same(copy: pd.Series, plain: pd.Series) -> bool:
    """The same answer on every test image."""
    copy, plain = copy.dropna().astype(bool), plain.dropna().astype(bool)
    return set(copy.index) == set(plain.index) and bool((copy == plain.reindex(copy.index)).all())


def carried_over(
    earlier: list[dict[str, Any]], pairs: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The earlier pairs this run could not test again (their answers have left the work folder)
    that still describe today's rows: the chosen row is still its data set's choice, and both rows'
    recorded accuracies on those images still give the pair's counts. A row rerun since, or a
    choice that moved, drops the pair."""
    done = [r for r in rows if r.get("status") == "done"]
    by_name = {r["experiment"]: r for r in done}
    choices = {(d, on): row["experiment"] for d, row, on in _choices(done)}
    tested = {(p["chosen"], p["chosen_on"], p["copy"], p["other"]) for p in pairs}
    kept = []
    for pair in earlier:
        if (pair["chosen"], pair["chosen_on"], pair["copy"], pair["other"]) in tested:
            continue
        if choices.get((pair["dataset"], pair["chosen_on"])) != pair["chosen"]:
            continue
        right = {
            "chosen": pair["both_right"] + pair["only_chosen"],
            "other": pair["both_right"] + pair["only_other"],
        }
        if all(
            _right(by_name.get(pair[side]), pair["copy"], pair["images"]) == n for side, n in right.items()
        ):
            kept.append(pair)
    return kept


UNPAIRED = {
    "answers_gone": "whose own evaluate outputs are gone from the work folder, its DVC cache and "
    f"benchmarks/results/{answer_bits.STORE} (rerun them to compare)",
    "no_chosen_answers": "whose answers are here, but no chosen row's of their data set on the same images",
}


def not_compared(
    rows: list[dict[str, Any]], pairs: list[dict[str, Any]], missing: list[str]
) -> dict[str, list[str]]:
    """The finished rows in no pair, by why (``UNPAIRED``), leaving out a data set's only row."""
    done = [r for r in rows if r.get("status") == "done"]
    per_dataset = Counter(r["dataset"] for r in done)
    compared = {name for p in pairs for name in (p["chosen"], p["other"])}
    alone = [
        r["experiment"] for r in done if r["experiment"] not in compared and per_dataset[r["dataset"]] > 1
    ]
    return {
        "answers_gone": sorted(name for name in alone if name in missing),
        "no_chosen_answers": sorted(name for name in alone if name not in missing),
    }


def _right(row: dict[str, Any] | None, copy: str, images: int) -> int | None:
    """How many of ``images`` the row's recorded accuracy on that copy says it got right."""
    if row is None:
        return None
    if copy in (PLAIN, VALIDATION):
        accuracy = row.get("test_accuracy" if copy == PLAIN else "val_accuracy")
    else:
        accuracy = (row.get("test_variants") or {}).get(f"test_{copy}")
    return None if accuracy is None else round(accuracy * images)


def _answers_on(copy: str) -> str:
    """Which images a pair was tested on: the test split, a copy of it, or validation."""
    return {PLAIN: "test", VALIDATION: "validation"}.get(copy, f"test, {copy}")


def render(
    pairs: list[dict[str, Any]], unpaired: dict[str, list[str]], commit: str, repeated: int = 0
) -> str:
    lines = [
        "# Paired tests between full-scale rows (benchmarks/paired.py)",
        "",
        "Per data set, the row chosen on validation against each other row on the same test images, "
        "and the row chosen on its worst degraded validation copy against each other row on each "
        "degraded test copy both answered: McNemar's exact test on the images exactly one of them "
        "gets right (no TTA). The `validation` lines test the clean choice where it was made, on the "
        "validation images: a large p there says a few photos, not a clear margin, chose the row. Read "
        f"from the rows' own evaluate outputs, or their copies committed in `{answer_bits.STORE}`; "
        f"script at commit {commit[:12]}.",
        "",
        "| data set | chosen on | chosen | answers on | against | images | both right | only chosen "
        "| only the other | McNemar p | differ at 5%? |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for p in pairs:
        lines.append(
            f"| {p['dataset']} | {p['chosen_on']} | `{p['chosen']}` | {_answers_on(p['copy'])} "
            f"| `{p['other']}` | {p['images']} | {p['both_right']} "
            f"| {p['only_chosen']} | {p['only_other']} | {p['mcnemar_p']:.3g} "
            f"| {'yes' if p['mcnemar_p'] < 0.05 else 'no'} |"
        )
    if not pairs:
        lines.append("| – | – | – | – | – | | | | | | |")
    lines.append("")
    for reason, names in unpaired.items():
        if names:
            rows = ", ".join(f"`{name}`" for name in names)
            lines.append(
                f"Not compared, {len(names)} row{'s' if len(names) > 1 else ''} {UNPAIRED[reason]}: {rows}."
            )
    if repeated:
        lines.append(
            f"Left out: {repeated} degraded-copy pair{'s' if repeated > 1 else ''} whose copy changed no "
            "answer of either row, each a repeat of the same two rows' test line (e.g. a 128 px "
            "downscale of photos already smaller)."
        )
    return "\n".join(lines)


@click.command()
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path),
    default=REPO / "benchmarks" / "work" / "full_scale",
    show_default=True,
    help="the project copy benchmarks/full_scale.py ran the rows in",
)
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=RESULTS)
def main(work: Path, results: Path) -> None:
    commit = source_commit(REPO)
    rows = json.loads((results / "full_scale.json").read_text())["rows"]
    try:
        stored = answer_bits.load(results)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    answers, store = gather_answers(rows, work, stored)
    answer_bits.save(results, store, commit)  # the answers read here, for whoever reruns this without them
    pairs, missing = paired_rows(rows, answers)
    earlier = results / "paired.json"
    if earlier.is_file():  # a row's answers leave the work folder when it reruns: keep what still holds
        kept = carried_over(json.loads(earlier.read_text()).get("pairs") or [], pairs, rows)
        pairs = sorted(pairs + kept, key=lambda p: (p["dataset"], p["chosen_on"] != "validation"))
    repeated = [p for p in pairs if p.get("repeats_plain")]
    pairs = [{k: v for k, v in p.items() if k != "repeats_plain"} for p in pairs if p not in repeated]
    left = not_compared(rows, pairs, missing)
    data = {"commit": commit, "pairs": pairs, "not_compared": left, "repeats_plain": len(repeated)}
    write_result(results, "paired", data, render(pairs, left, commit, len(repeated)))


if __name__ == "__main__":
    main()
