"""Train a small net with the real fit loop; SIGKILL this process after epoch ``kill_at`` (0: never).

Usage: train_until_killed.py CHECKPOINT KILL_AT OUTPUT
"""

import os
import signal
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from visionlab.params import TrainParams
from visionlab.runtime.loaders import loader
from visionlab.training.loop import fit
from visionlab.training.phase import Phase, RunHooks


def main() -> None:
    checkpoint, kill_at, output = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    torch.manual_seed(0)
    np.random.seed(0)  # as the train stage seeds it (runtime.device): mixup draws from it
    g = torch.Generator().manual_seed(1)
    x = torch.randn(96, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    train = loader(TensorDataset(x[:64], y[:64]), 16, shuffle=True, workers=0, seed=3)
    val = loader(TensorDataset(x[64:], y[64:]), 16, shuffle=False, workers=0)
    net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))
    settings = TrainParams(  # mixup draws from numpy's and torch's generators: both must resume
        epochs=6, lr=0.01, optimizer="sgd", schedule="cosine", early_stopping_patience=0, mixup_alpha=0.4
    )

    def on_epoch(row: dict) -> None:
        if row["epoch"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    result = fit(
        net,
        train,
        val,
        settings,
        torch.device("cpu"),
        Phase(checkpoint=checkpoint),
        RunHooks(checkpoint_key="same-params", on_epoch=on_epoch),
    )
    torch.save({"state": net.state_dict(), "resumed_from": result.resumed_from}, output)


if __name__ == "__main__":
    main()
