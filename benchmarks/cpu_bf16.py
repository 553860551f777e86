"""CPU bfloat16 autocast against float32: featurize, train and evaluate throughput, and accuracy.

Each mode runs exactly what the pipeline runs with ``train.amp: off`` (float32) and with
``train.amp: bf16`` (bfloat16 autocast + channels-last, what ``auto`` picks on a CPU with
AVX512-BF16/AMX), on the same real images, same seed, same ImageNet EfficientNet-Lite0:

  * featurize: the frozen backbone's pooled features of every image (``gather_outputs`` as the featurize
    stage calls it); then a head trained on them, scored on the test images (frozen-base accuracy);
  * train: fine-tuning from ``backbone.blocks.5`` on the training images (the fit loop);
  * evaluate: the fine-tuned model on the test images (``gather_outputs`` as the evaluate stage calls it).

Images come from the shared flowers sample, decoded once into memory (as the train stage preloads
them), so the timings are the model's alone.

Usage:  uv run python benchmarks/cpu_bf16.py [--shared ../shared/datasets] [--per-class 40]
Writes benchmarks/results/cpu_bf16.{json,md}.
"""

from __future__ import annotations

import os
import platform
import random
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import click
import torch
from torch.utils.data import TensorDataset

from visionlab.models import build_model
from visionlab.params import ModelParams, TrainParams
from visionlab.runtime.device import cpu_supports_bf16, seed_everything
from visionlab.runtime.inference import gather_outputs
from visionlab.runtime.loaders import ImageDataset, loader
from visionlab.training.loop import fit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import source_commit, write_result

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SIZE = 224
BATCH = 32


def sample_images(archive: Path, folder: Path, per_class: int, seed: int) -> tuple[list, list, list]:
    """Up to ``per_class`` JPEGs per class, split 2/3 train, 1/3 test (seeded, stratified)."""
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    root = next(folder.rglob("daisy")).parent
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    rng = random.Random(seed)
    train, test = [], []
    for label, name in enumerate(classes):
        files = sorted((root / name).glob("*.jpg"))
        rng.shuffle(files)
        files = files[:per_class]
        cut = len(files) * 2 // 3
        train += [(str(f), label) for f in files[:cut]]
        test += [(str(f), label) for f in files[cut:]]
    return train, test, classes


def dataset(rows: list, model) -> ImageDataset:
    data = ImageDataset([p for p, _ in rows], [y for _, y in rows], SIZE, model.mean, model.std)
    data.preload()
    return data


def run_mode(amp: str, train_rows: list, test_rows: list, classes: list[str], epochs: int) -> dict:
    bf16 = amp == "bf16"
    cpu = torch.device("cpu")
    seed_everything(0)
    frozen = ModelParams(arch="efficientnet_lite0", weights="imagenet", base="frozen", augmented=False)
    model = build_model(frozen, len(classes)).eval()
    if bf16:
        model.to(memory_format=torch.channels_last)
    train_set, test_set = dataset(train_rows, model), dataset(test_rows, model)
    out: dict = {"amp": amp}

    started = time.perf_counter()
    features = model.forward_features
    train_features, train_labels = gather_outputs(features, loader(train_set, BATCH, False, 0), cpu, amp=bf16)
    test_features, test_labels = gather_outputs(features, loader(test_set, BATCH, False, 0), cpu, amp=bf16)
    seconds = time.perf_counter() - started
    out["featurize_images_per_second"] = round((len(train_set) + len(test_set)) / seconds, 1)
    settings = TrainParams(epochs=60, lr=1e-3, early_stopping_patience=0, schedule="none", amp=amp, seed=0)
    head_train = loader(TensorDataset(train_features, train_labels), BATCH, True, 0)
    head_test = loader(TensorDataset(test_features, test_labels), BATCH, False, 0)
    # Validation on the training data: the test images never choose an epoch.
    head_val = loader(TensorDataset(train_features, train_labels), BATCH, False, 0)
    fit(model.head, head_train, head_val, settings, cpu)
    logits, _ = gather_outputs(model.head, head_test, cpu, amp=bf16)
    out["frozen_head_test_accuracy"] = round((logits.argmax(1) == test_labels).float().mean().item(), 4)

    # Phase two from the head just trained, as the train stage does for base: finetune.
    model.unfreeze_from("backbone.blocks.5")
    settings = settings.model_copy(update={"epochs": epochs, "lr": 1e-4})
    train_batches, test_batches = loader(train_set, BATCH, True, 0), loader(test_set, BATCH, False, 0)
    result = fit(model, train_batches, loader(train_set, BATCH, False, 0), settings, cpu)
    out["train_images_per_second"] = round(result.samples_per_second, 1)

    model.eval()
    started = time.perf_counter()
    logits, labels = gather_outputs(model, test_batches, cpu, amp=bf16)
    out["evaluate_images_per_second"] = round(len(test_set) / (time.perf_counter() - started), 1)
    out["finetuned_test_accuracy"] = round((logits.argmax(1) == labels).float().mean().item(), 4)
    return out


@click.command()
@click.option("--shared", type=click.Path(path_type=Path), default=REPO.parent / "shared" / "datasets")
@click.option("--per-class", default=40, show_default=True)
@click.option("--epochs", default=2, show_default=True, help="fine-tuning epochs per mode")
def main(shared: Path, per_class: int, epochs: int) -> None:
    commit = source_commit(REPO)  # as the run starts: the tree may change while it runs
    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        train_rows, test_rows, classes = sample_images(shared / "flower_photos.tgz", Path(tmp), per_class, 42)
        modes = [run_mode(amp, train_rows, test_rows, classes, epochs) for amp in ("off", "bf16")]
    report = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "cpu_bf16": cpu_supports_bf16(),
            "torch": torch.__version__,
        },
        "data": {"train_images": len(train_rows), "test_images": len(test_rows), "image_size": SIZE},
        "fine_tune_epochs": epochs,
        "modes": modes,
    }
    report["load_average"] = [round(v, 1) for v in os.getloadavg()]  # other work skews the timings
    report["commit"] = commit
    fp32, bf16 = modes
    rows = [
        ("featurize (frozen Lite0), img/s", "featurize_images_per_second"),
        ("train (fine-tune from blocks.5), img/s", "train_images_per_second"),
        ("evaluate, img/s", "evaluate_images_per_second"),
        ("test accuracy, head on frozen features", "frozen_head_test_accuracy"),
        ("test accuracy, fine-tuned", "finetuned_test_accuracy"),
    ]
    lines = [
        "# CPU bfloat16 autocast vs float32 (benchmarks/cpu_bf16.py)",
        "",
        f"EfficientNet-Lite0 (ImageNet) at {SIZE} px, batch {BATCH}, {torch.get_num_threads()} threads, "
        f"native CPU bfloat16: {cpu_supports_bf16()}; {len(train_rows)} train / {len(test_rows)} test "
        f"images of the shared flowers sample, decoded into memory; {epochs} fine-tuning epochs.",
        "",
        "| measure | float32 (amp: off) | bfloat16 (amp: bf16 / auto) | ratio |",
        "|---|---:|---:|---:|",
    ]
    for label, key in rows:
        ratio = f"{bf16[key] / fp32[key]:.2f}x" if "per_second" in key and fp32[key] else ""
        lines.append(f"| {label} | {fp32[key]} | {bf16[key]} | {ratio} |")
    lines.append(f"\nLoad average at the end (1, 5, 15 min): {report['load_average']}. Commit: {commit}.")
    write_result(RESULTS, "cpu_bf16", report, "\n".join(lines))


if __name__ == "__main__":
    main()
