"""torchvision's ImageNet weights: found in the torch hub cache, downloaded once, or a clear error.

The files live where torchvision itself would put them, ``torch.hub.get_dir()/checkpoints``
(``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``), under the name in
the weights' URL; a file placed there by hand is used as is. Without internet the download fails
fast (short timeout, no retries) into a :class:`MissingArtifactError` that says how to place the
file, instead of a traceback.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from visionlab.errors import MissingArtifactError
from visionlab.locks import file_lock

log = logging.getLogger(__name__)

# Seconds without an answer before the download gives up (connect, and each read of the body).
DOWNLOAD_TIMEOUT_S = 20.0
# Set to 1 to never try a download (air-gapped machines: fail at once with the placement hint).
OFFLINE_ENV = "VISIONLAB_OFFLINE"

# Where each architecture's ImageNet weights come from: torchvision's V1 for all (the ones Keras
# studies' numbers are closest to, and the only ones InceptionV3, VGG and AlexNet have). Their URLs
# as torchvision's ``*_Weights.IMAGENET1K_V1`` name them (tests/test_zoo.py checks they still do),
# written out so that finding a file (`visionlab plan`, `doctor`) need not import torchvision (~2 s).
TORCHVISION_URLS = {
    "mobilenet_v2": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
    "alexnet": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "inception_v3": "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
}

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")  # torchvision names files <name>-<sha256 prefix>.pth


def weights_url(arch: str) -> str:
    return TORCHVISION_URLS[arch]


def checkpoint_dir() -> Path:
    """torch hub's checkpoint folder; reads TORCH_HOME now, so a changed environment is honoured."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_path(arch: str) -> Path:
    return checkpoint_dir() / Path(urlparse(weights_url(arch)).path).name


def _missing_message(arch: str, path: Path, reason: str) -> str:
    url = weights_url(arch)
    return (
        f"ImageNet weights for {arch} are missing: {path.name} is not in {path.parent} "
        f"and downloading it failed ({reason}).\n"
        f"  To use them: on a machine with internet, download {url}\n"
        f"  and copy the file into torch's hub cache: cp {path.name} {path.parent}/\n"
        f"  (that folder is $TORCH_HOME/hub/checkpoints, ~/.cache/torch/hub/checkpoints by default).\n"
        f"  Or train {arch} from scratch: set the model's weights: none (and base: trainable) in params.yaml."
    )


def _download(arch: str, path: Path) -> None:
    """Fetch the weights into ``path`` atomically, checking the hash prefix in their name."""
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise MissingArtifactError(_missing_message(arch, path, f"{OFFLINE_ENV} is set"))
    url = weights_url(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    log.info("downloading %s ImageNet weights from %s to %s", arch, url, path)
    try:
        # A fresh opener reads the proxy settings of the environment as it is now.
        opener = urllib.request.build_opener()
        with opener.open(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise MissingArtifactError(_missing_message(arch, path, str(exc) or type(exc).__name__)) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    expected = _HASH_IN_NAME.search(path.name)
    if expected and not digest.hexdigest().startswith(expected.group(1)):
        partial.unlink(missing_ok=True)
        raise MissingArtifactError(
            _missing_message(arch, path, f"the downloaded bytes do not match the hash {expected.group(1)}")
        )
    os.replace(partial, path)


def imagenet_state_dict(arch: str) -> tuple[dict[str, torch.Tensor], Path]:
    """torchvision's ImageNet state dict for ``arch`` and the file it came from."""
    path = weights_path(arch)
    if not path.is_file():
        with file_lock(path):  # parallel experiments: one downloads, the others wait and reuse
            if not path.is_file():
                _download(arch, path)
    try:
        # The file exists, so this only loads it (and copes with torch hub's legacy zip format).
        state = torch.hub.load_state_dict_from_url(
            weights_url(arch),
            model_dir=str(path.parent),
            map_location="cpu",
            progress=False,
            weights_only=True,
        )
    except Exception as exc:
        raise MissingArtifactError(
            f"{path}: not a readable PyTorch weights file ({type(exc).__name__}: {_first_line(exc)}); "
            f"delete it and place a fresh copy of {weights_url(arch)} there"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MissingArtifactError(
            f"{path}: holds no state dict of tensors; replace it with {weights_url(arch)}"
        )
    return state, path


def load_imagenet_weights(net: nn.Module, arch: str) -> None:
    """Load torchvision's ImageNet weights into ``net``, a freshly built torchvision ``arch``."""
    state, path = imagenet_state_dict(arch)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise MissingArtifactError(
            f"{path}: these are not torchvision's {arch} weights ({_first_line(exc, 2)}); "
            f"replace the file with {weights_url(arch)}"
        ) from None


def _first_line(exc: BaseException, lines: int = 1) -> str:
    text = " ".join(str(exc).strip().splitlines()[:lines])
    return text if len(text) <= 300 else text[:300] + "..."
