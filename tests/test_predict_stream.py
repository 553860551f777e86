"""`visionlab predict` streams: results batch by batch, memory bounded by the batch, and
bfloat16 autocast agrees with float32 on real photos (the shared flowers sample)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import SHARED_DATASETS, flower_photos, write_image
from tests.test_explanations import toy_checkpoint
from visionlab.explanations import predict
from visionlab.explanations.predict import Predictor
from visionlab.models import build_model, save_checkpoint
from visionlab.params import ModelParams

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


def test_results_come_batch_by_batch_in_input_order(tmp_path, monkeypatch):
    checkpoint = toy_checkpoint(tmp_path / "model.pt", ["a", "b"])
    folder = tmp_path / "inbox"
    for n in range(10):
        write_image(folder / f"{n:02d}.png", seed=n, fmt="PNG")
    (folder / "05.png").write_bytes(b"not a png")
    decoded = []
    real = predict.load_pixels
    monkeypatch.setattr(predict, "load_pixels", lambda path, *a: decoded.append(path) or real(path, *a))

    results = Predictor.load(checkpoint).stream([folder], batch_size=4)
    first = next(results)
    assert first.path.name == "00.png" and first.top and len(decoded) == 4  # one batch, no more
    rest = list(results)
    assert [r.path.name for r in [first, *rest]] == [f"{n:02d}.png" for n in range(10)]
    assert rest[4].error and "05.png" in rest[4].error and all(r.top for r in rest if r is not rest[4])


def _lite0_with_margins(tmp_path: Path, seed: int, photos: int) -> tuple[Path, list[Path]]:
    """A frozen ImageNet Lite0 checkpoint whose random head is scaled x8 (classes told apart, not
    near-uniform logits), and that many shared flowers photos; skips without the shared sample."""
    torch.manual_seed(seed)
    spec = ModelParams(arch="efficientnet_lite0", weights="imagenet", base="frozen", augmented=False)
    model = build_model(spec, len(CLASSES))
    with torch.no_grad():
        for parameter in model.head.parameters():
            parameter.mul_(8)
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(checkpoint, model, spec, CLASSES, 224)
    if not (SHARED_DATASETS / "flower_photos.tgz").is_file():
        pytest.skip(f"{SHARED_DATASETS / 'flower_photos.tgz'} not found")
    return checkpoint, flower_photos(tmp_path / "photos", photos)


def test_bfloat16_agrees_with_float32_on_real_photos(tmp_path):
    """A frozen ImageNet EfficientNet-Lite0 (its real weights) with a fixed random head (x8, so its
    classes are told apart; measured: median probability difference 0.007, max 0.029). Where
    float32's top class leads by more than bfloat16's rounding could move, bfloat16 picks it too."""
    checkpoint, photos = _lite0_with_margins(tmp_path, 0, 24)
    classes = CLASSES

    fast, exact = Predictor.load(checkpoint, top_k=5), Predictor.load(checkpoint, top_k=5)
    fast.amp, exact.amp = True, False
    got = {r.path: dict(r.top) for r in fast.stream(photos, batch_size=8)}
    want = {r.path: dict(r.top) for r in exact.stream(photos, batch_size=8)}
    assert set(got) == set(want) == set(photos)
    differences, compared = [], 0
    for path in photos:
        a = np.array([got[path][c] for c in classes])
        b = np.array([want[path][c] for c in classes])
        differences.append(np.abs(a - b).max())
        top2 = np.sort(b)[-2:]
        if top2[1] - top2[0] > 0.05:
            compared += 1
            assert a.argmax() == b.argmax(), path
    assert max(differences) < 0.05, max(differences)
    assert compared >= len(photos) // 2, "too few clear decisions to compare"


@pytest.mark.slow
def test_memory_does_not_grow_with_the_folder(tmp_path):
    """Peak RSS of `visionlab predict` on 100 and on 1,100 files (hard links of one photo at
    224 px): holding every decoded image, as before, would add about 150 MB for the 1,000 more."""
    checkpoint = toy_checkpoint(tmp_path / "model.pt", ["a", "b"], size=224)
    source = tmp_path / "one.jpg"
    write_image(source, seed=1, size=(320, 240))

    def peak(count: int) -> float:
        folder = tmp_path / f"inbox-{count}"
        folder.mkdir()
        for n in range(count):
            os.link(source, folder / f"{n:05d}.jpg")
        probe = (
            "import resource, sys; from visionlab.cli import main\n"
            "try: main(sys.argv[1:])\n"
            "except SystemExit as exc: assert not exc.code, exc.code\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                probe,
                "predict",
                "--checkpoint",
                str(checkpoint),
                "--workers",
                "0",
                str(folder),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        )
        assert done.stdout.count("\n") == count + 1
        return int(done.stdout.splitlines()[-1]) / 1024  # MB

    small, large = peak(100), peak(1100)
    assert large - small < 40, (small, large)


def test_predict_folds_batch_norm_without_changing_a_prediction(tmp_path):
    """The folded model (no Grad-CAM asked) against the model as trained (Grad-CAM asked keeps it
    unfolded), both in float32 on real photos: the same top class and probabilities to rounding."""
    checkpoint, photos = _lite0_with_margins(tmp_path, 1, 16)

    folded, as_trained = Predictor.load(checkpoint, top_k=5), Predictor.load(checkpoint, top_k=5, cam=True)
    assert any(type(m).__name__ == "FoldedNormAct" for m in folded.model.modules())
    assert not any(type(m).__name__ == "FoldedNormAct" for m in as_trained.model.modules())
    folded.amp = as_trained.amp = False
    got = {r.path: r.top for r in folded.stream(photos, batch_size=8)}
    want = {r.path: r.top for r in as_trained.stream(photos, batch_size=8)}
    for path in photos:
        assert got[path][0][0] == want[path][0][0], path
        assert np.allclose([p for _, p in got[path]], [p for _, p in want[path]], atol=1e-4), path
