from collections import Counter

from visionlab.data.split import stratified_split
from visionlab.params import SplitFractions

ITEMS = [(f"{label}/{i}.jpg", label) for label, n in (("a", 100), ("b", 50), ("c", 20)) for i in range(n)]


def test_stratified_proportions():
    assignment = stratified_split(ITEMS, SplitFractions(), seed=1)
    counts = Counter((key.split("/")[0], split) for key, split in assignment.items())
    assert (counts["a", "train"], counts["a", "val"], counts["a", "test"]) == (70, 20, 10)
    assert (counts["b", "train"], counts["b", "val"], counts["b", "test"]) == (35, 10, 5)
    assert (counts["c", "train"], counts["c", "val"], counts["c", "test"]) == (14, 4, 2)


def test_deterministic_and_order_independent():
    first = stratified_split(ITEMS, SplitFractions(), seed=7)
    again = stratified_split(list(reversed(ITEMS)), SplitFractions(), seed=7)
    other = stratified_split(ITEMS, SplitFractions(), seed=8)
    assert first == again
    assert first != other
