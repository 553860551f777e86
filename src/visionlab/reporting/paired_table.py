"""The report's paired table: each experiment against the one chosen on validation, image by image,
on test and on validation (McNemar's exact test), from evaluate's per-image answers."""

from __future__ import annotations

import pandas as pd

from visionlab.evaluation.intervals import mcnemar
from visionlab.reporting.collect import DatasetRecord
from visionlab.reporting.tables import Cell, Table, validation_score


def paired_table(dataset: DatasetRecord) -> Table | None:
    """Each experiment against the one chosen on validation, on the test images both answered:
    McNemar's exact test on the images exactly one of them gets right. Beside it the same test on
    the validation images, where both wrote theirs: whether validation's choice itself beat this
    row beyond chance, or a few photos decided it. None with no pair to test."""
    answered = [e for e in dataset.run if e.answers is not None and len(e.answers)]
    if len(answered) < 2:
        return None
    chosen = max(sorted(answered, key=lambda e: e.name), key=validation_score)
    rows = []
    for other in answered:
        if other is chosen or set(other.answers.index) != set(chosen.answers.index):
            continue  # another test split (another cleaning, another data set card): not paired
        test = _pair(chosen.answers, other.answers)
        val = _pair(chosen.val_answers, other.val_answers)
        rows.append(
            [
                Cell(other.name),
                *(Cell(str(count), numeric=True) for count in test[:3]),
                Cell(f"{test[3]:.3g}", numeric=True),
                Cell("yes" if test[3] < 0.05 else "no"),
                Cell(f"{val[1]} / {val[2]}" if val else "–", numeric=True),
                Cell(f"{val[3]:.3g}" if val else "–", numeric=True),
            ]
        )
    if not rows:
        return None
    headers = [
        f"vs {chosen.name} (chosen on val.)",
        "both right",
        f"only {chosen.name}",
        "only this one",
        "McNemar p",
        "differ at 5%?",
        f"on val.: only {chosen.name} / only this one",
        "val. McNemar p",
    ]
    return Table(headers, rows, [False, True, True, True, True, False, True, True])


def _pair(mine: pd.Series | None, theirs: pd.Series | None) -> tuple[int, int, int, float] | None:
    """Both right, only the first right, only the second right, and McNemar's p over the images
    both answered; None where either has no answers or they answered other images."""
    if mine is None or theirs is None or set(mine.index) != set(theirs.index) or not len(mine):
        return None
    theirs = theirs.reindex(mine.index)
    both, only_mine, only_theirs = (mine & theirs).sum(), (mine & ~theirs).sum(), (theirs & ~mine).sum()
    return int(both), int(only_mine), int(only_theirs), mcnemar(list(mine), list(theirs))
