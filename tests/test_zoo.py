"""The model zoo: the studies' parameter counts, heads, base modes, Grad-CAM layers and weights.

Transfer models are built with ``load_weights=False`` (nothing is downloaded); the weights tests
point TORCH_HOME at a temporary folder.
"""

from __future__ import annotations

import hashlib
import time

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from tests.http_server import serve
from visionlab.errors import MissingArtifactError, VisionlabError
from visionlab.models import build_model, load_checkpoint, save_checkpoint
from visionlab.models import weights as zoo_weights
from visionlab.models.base import count_keras_parameters, count_trainable
from visionlab.params import ModelParams


def spec(arch: str, **overrides) -> ModelParams:
    pretrained = arch not in {"simple_cnn", "catsdogs_cnn", "handmade_cnn"} and not arch.startswith(
        ("cifar", "caltech")
    )
    fields = {
        "arch": arch,
        "weights": "imagenet" if pretrained else "none",
        "base": "frozen" if pretrained else "trainable",
        "augmented": False,
    }
    return ModelParams(**(fields | overrides))


def output(model: nn.Module, channels: int, size: int, batch: int = 1) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(torch.zeros(batch, channels, size, size))


def cam_name(model) -> str:
    layer = model.cam_layer()
    return next(name for name, module in model.named_modules() if module is layer)


# --- from-scratch nets ---------------------------------------------------------------------------

# arch, classes, input side, channels, trainable params, Grad-CAM layer
STUDY_NETS = [
    # simple_cnn, by hand: convs 2,432 + 18,496 + 55,392 + 110,720 + 184,480 = 371,520; batch norm
    # 2 * (32 + 64 + 96 + 128 + 160) = 960; dense 7*7*160*256 + 256 = 2,007,296; classes 1,285.
    ("simple_cnn", 5, 224, 3, 2_381_061, "features.block5.relu"),
    ("catsdogs_cnn", 2, 200, 1, 4_737_473, "features.conv2"),
    ("cifar_base", 10, 32, 3, 1_442_698, "features.relu4"),
    ("cifar_inception", 10, 32, 3, 124_386, "features.inception3"),
    ("cifar_residual", 10, 32, 3, 309_322, "features.res3"),
    ("caltech_cnn1", 5, 224, 3, 353_013, "features.relu2"),
    ("caltech_cnn2", 5, 224, 3, 158_997, "features.relu3"),
    ("caltech_cnn3", 5, 224, 3, 324_949, "features.relu4"),
    ("handmade_cnn", 5, 224, 3, 406_149, "blocks.3.2"),
]


@pytest.mark.parametrize(("arch", "classes", "size", "channels", "trainable", "cam"), STUDY_NETS)
def test_study_nets_have_the_studies_parameter_counts(arch, classes, size, channels, trainable, cam):
    model = build_model(spec(arch), classes, grayscale=channels == 1)
    assert count_trainable(model) == trainable
    assert model.in_channels == channels
    assert output(model, channels, size, batch=2).shape == (2, classes)
    assert cam_name(model) == cam
    assert (model.mean, model.std) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert list(model.head_l2_weights()) == []  # head.l2 is for transfer heads; l2 covers these


def test_cifar_base_counts_batch_norm_statistics_like_keras():
    model = build_model(spec("cifar_base"), 10)
    assert count_trainable(model) == 1_442_698
    assert count_keras_parameters(model) == 1_442_954
    assert model.default_image_size == 32
    without = build_model(spec("cifar_base", batch_norm=False), 10)
    assert count_trainable(without) == 1_442_698 - 256


def test_simple_cnn_honours_batch_norm_and_dropout():
    model = build_model(spec("simple_cnn", batch_norm=False, dropout=0.25, dense_dropout=0.4), 5)
    assert count_trainable(model) == 2_381_061 - 960
    assert {m.p for m in model.features.modules() if isinstance(m, nn.Dropout)} == {0.25}
    assert model.head.dropout.p == 0.4
    grey = build_model(spec("simple_cnn"), 5, grayscale=True)
    assert grey.features.block1.conv.in_channels == 1


def test_study_nets_l2_covers_conv_and_dense_kernels():
    model = build_model(spec("caltech_cnn1"), 5)
    assert [tuple(w.shape) for w in model.l2_weights()] == [
        (8, 3, 11, 11),
        (16, 8, 5, 5),
        (128, 2704),
        (5, 128),
    ]


def test_caltech_stride_four_same_padding_gives_56():
    model = build_model(spec("caltech_cnn1"), 5).eval()
    seen = {}
    for name in ("conv1", "pool1", "pool2"):
        model.features.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, out.shape[-1])
        )
    output(model, 3, 224)
    assert seen == {"conv1": 56, "pool1": 27, "pool2": 13}


def test_flatten_nets_are_exact_at_their_size_and_still_run_at_others():
    model = build_model(spec("caltech_cnn2"), 5).eval()
    assert model.default_image_size == 224
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), model.features(x).flatten(1))  # grid pool = identity
    assert output(model, 3, 64).shape == (1, 5)
    resized = build_model(spec("caltech_cnn2", image_size=160), 5)
    assert resized.feature_dim == 32 * 4 * 4 and output(resized, 3, 160).shape == (1, 5)
    assert output(build_model(spec("simple_cnn"), 5), 3, 64).shape == (1, 5)


def test_catsdogs_single_logit_acts_as_two_classes():
    model = build_model(spec("catsdogs_cnn"), 2, grayscale=True)
    assert model.default_image_size == 200
    assert isinstance(model.head.logit, nn.Linear) and model.head.logit.out_features == 1
    logits = output(model, 1, 200, batch=2)
    assert torch.equal(logits[:, 0], torch.zeros(2))
    z, labels = logits[:, 1], torch.tensor([0, 1])
    assert torch.allclose(F.softmax(logits, 1)[:, 1], torch.sigmoid(z))
    assert torch.allclose(
        F.cross_entropy(logits, labels), F.binary_cross_entropy_with_logits(z, labels.float())
    )
    with pytest.raises(VisionlabError, match="exactly 2 classes; the data set has 3"):
        build_model(spec("catsdogs_cnn"), 3, grayscale=True)


def test_cifar_inception_blocks_concatenate_four_branches():
    model = build_model(spec("cifar_inception"), 10).eval()
    block = model.features.inception1
    x = torch.rand(2, 32, 32, 32)
    with torch.no_grad():
        branches = [b(x) for b in (block.branch1, block.branch3, block.branch5, block.branch_pool)]
        assert torch.equal(block(x), torch.cat(branches, 1))
    assert [b.shape[1] for b in branches] == [16, 32, 8, 8] and block.out_channels == 64
    assert [k.kernel_size for k in block.branch3.modules() if isinstance(k, nn.Conv2d)] == [(1, 1), (3, 3)]
    assert [k.kernel_size for k in block.branch5.modules() if isinstance(k, nn.Conv2d)] == [(1, 1), (5, 5)]
    assert isinstance(block.branch_pool[0], nn.MaxPool2d)
    assert output(model, 3, 32, batch=2).shape == (2, 10)
    assert cam_name(model) == "features.inception3"


def test_cifar_residual_uses_identity_then_projection_shortcuts():
    model = build_model(spec("cifar_residual"), 10).eval()
    assert isinstance(model.features.res1.shortcut, nn.Identity)
    projection = model.features.res2.shortcut.conv
    assert projection.kernel_size == (1, 1) and projection.stride == (2, 2)
    assert (projection.in_channels, projection.out_channels) == (32, 64)
    block, x = model.features.res2, torch.rand(2, 32, 32, 32)
    with torch.no_grad():
        assert torch.allclose(block(x), torch.relu(block.body(x) + block.shortcut(x)))
    assert output(model, 3, 32, batch=2).shape == (2, 10)
    assert cam_name(model) == "features.res3"


def test_from_scratch_nets_reject_head_settings():
    with pytest.raises(VisionlabError, match="head: settings apply only to transfer-learning"):
        build_model(spec("simple_cnn", head={"hidden": [64]}), 5)


# --- transfer-learning nets ----------------------------------------------------------------------

# arch, head, input side, trainable (head) params, feature_dim, Grad-CAM layer
TRANSFER_NETS = [
    ("resnet50", {"hidden": [100, 50], "dropout": 0.5}, 224, 210_205, 2048, "backbone.layer4"),
    ("resnet50", {"hidden": [512, 128]}, 64, 1_115_397, 2048, "backbone.layer4"),
    ("vgg16", {"hidden": [512, 128]}, 224, 328_965, 512, "backbone.block5_relu3"),
    ("mobilenet_v2", {"hidden": [1024]}, 224, 1280 * 1024 + 1024 + 1024 * 5 + 5, 1280, "backbone.top"),
    ("alexnet", {"pool": "max"}, 224, 256 * 5 + 5, 256, "backbone.relu5"),
    ("inception_v3", {}, 299, 2048 * 5 + 5, 2048, "backbone.Mixed_7c"),
    ("efficientnet_lite0", {}, 224, 1280 * 5 + 5, 1280, "backbone.bn2"),
    ("efficientnet_lite1", {}, 240, 1280 * 5 + 5, 1280, "backbone.bn2"),
    ("efficientnet_lite2", {}, 260, 1280 * 5 + 5, 1280, "backbone.bn2"),
    ("vgg19", {"native": True}, 224, 4096 * 5 + 5, 4096, "backbone.block5_relu4"),
    ("alexnet", {"native": True}, 224, 4096 * 2048 + 2048 + 2048 * 5 + 5, 4096, "backbone.relu5"),
]


@pytest.mark.parametrize(("arch", "head", "size", "trainable", "features", "cam"), TRANSFER_NETS)
def test_transfer_heads_have_the_studies_parameter_counts(arch, head, size, trainable, features, cam):
    model = build_model(spec(arch, head=head), 5, load_weights=False)
    assert count_trainable(model) == trainable == sum(p.numel() for p in model.head.parameters())
    assert model.feature_dim == features
    with torch.no_grad():
        cached = model.eval().forward_features(torch.zeros(1, 3, size, size))
        assert cached.shape == (1, features)
        assert model.head(cached).shape == (1, 5)
    assert cam_name(model) == cam
    assert model.in_channels == 3


def test_native_heads_retrain_the_last_layers_only():
    alexnet = build_model(spec("alexnet", head={"native": True}), 5, load_weights=False)
    assert [type(m).__name__ for m in alexnet.head] == ["Dropout", "Linear", "ReLU", "Linear"]
    assert (alexnet.head.fc7.in_features, alexnet.head.fc7.out_features) == (4096, 2048)
    assert alexnet.backbone.fc6.out_features == 4096 and not alexnet.backbone.fc6.weight.requires_grad
    with pytest.raises(VisionlabError, match="only vgg16, vgg19 and alexnet keep their own"):
        build_model(spec("resnet50", head={"native": True}), 5, load_weights=False)
    with pytest.raises(VisionlabError, match="only vgg16, vgg19 and alexnet"):
        build_model(spec("efficientnet_lite0", head={"native": True}), 5, load_weights=False)


def test_head_layers_batch_norm_and_l2_kernels():
    model = build_model(
        spec("resnet50", head={"hidden": [100, 50], "batch_norm": True}), 5, load_weights=False
    )
    assert [type(m).__name__ for m in model.head] == [
        *("Linear", "BatchNorm1d", "ReLU", "Dropout") * 2,
        "Linear",
    ]
    assert [tuple(w.shape) for w in model.head_l2_weights()] == [(100, 2048), (50, 100), (5, 50)]
    backbone_kernels = list(model.l2_weights())
    assert backbone_kernels[0] is model.backbone.conv1.weight and len(backbone_kernels) == 53
    pooled = build_model(spec("resnet50", head={"pool": "max"}), 5, load_weights=False)
    assert isinstance(pooled.pool.pool, nn.AdaptiveMaxPool2d)


def test_normalisation_follows_the_weights_unless_overridden():
    assert build_model(spec("resnet50"), 5, load_weights=False).mean == (0.485, 0.456, 0.406)
    inception = build_model(spec("inception_v3"), 5, load_weights=False)
    assert (inception.mean, inception.std, inception.default_image_size) == ((0.5,) * 3, (0.5,) * 3, 299)
    assert not inception.backbone.Conv2d_1a_3x3.conv.weight.requires_grad
    assert "AuxLogits" not in dict(inception.named_modules())
    caffe = build_model(spec("caltech_cnn1", normalize="caffe"), 5)
    pixel = torch.tensor([0.5, 0.5, 0.5])
    centred = (pixel - torch.tensor(caffe.mean)) / torch.tensor(caffe.std)
    assert torch.allclose(
        centred, torch.tensor([127.5 - 123.68, 127.5 - 116.779, 127.5 - 103.939]), atol=1e-3
    )
    # On ImageNet weights, centring keeps the scale the weights were trained at: one std for all
    # channels (centring, not standardising), the average of the weights' own.
    vgg = build_model(spec("vgg16", normalize="caffe"), 5, load_weights=False)
    assert vgg.mean == caffe.mean and vgg.std == pytest.approx((0.226,) * 3, abs=1e-3)
    imagenet = build_model(spec("cifar_base", normalize="imagenet"), 10)
    assert imagenet.std == (0.229, 0.224, 0.225)
    assert build_model(spec("resnet50", normalize="unit"), 5, load_weights=False).mean == (0.0, 0.0, 0.0)


# --- base modes ----------------------------------------------------------------------------------


def test_base_modes_decide_what_trains():
    trainable = build_model(spec("resnet50", base="trainable"), 5, load_weights=False)
    assert all(p.requires_grad for p in trainable.parameters())
    frozen = build_model(spec("resnet50"), 5, load_weights=False)
    assert {n.split(".")[0] for n, p in frozen.named_parameters() if p.requires_grad} == {"head"}
    finetune = build_model(
        spec("resnet50", base="finetune", unfreeze_from="backbone.layer4"), 5, load_weights=False
    )
    assert {n.split(".")[0] for n, p in finetune.named_parameters() if p.requires_grad} == {"head"}

    unfrozen = finetune.unfreeze_from("backbone.layer4")
    assert unfrozen and all(name.startswith("backbone.layer4.") for name in unfrozen)
    assert {n for n, p in finetune.named_parameters() if p.requires_grad} == {
        *unfrozen,
        *(f"head.{n}" for n, _ in finetune.head.named_parameters()),
    }
    assert not finetune.backbone_frozen
    finetune.train()
    assert finetune.backbone.layer4.training and finetune.backbone.layer4[0].bn1.training
    assert not finetune.backbone.layer3.training and not finetune.backbone.bn1.training
    before = finetune.backbone.layer3[0].bn1.running_mean.clone()
    finetune(torch.rand(2, 3, 64, 64))
    assert torch.equal(before, finetune.backbone.layer3[0].bn1.running_mean)


def test_unfreeze_from_names_the_blocks_on_a_typo():
    model = build_model(spec("resnet50"), 5, load_weights=False)
    blocks = (
        "backbone.conv1, backbone.bn1, backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4"
    )
    with pytest.raises(
        VisionlabError, match=f"resnet50 has no module 'layer4'; its blocks, in order: {blocks}"
    ):
        model.unfreeze_from("layer4")
    with pytest.raises(VisionlabError, match="part of resnet50's head"):
        model.unfreeze_from("head.classes")
    with pytest.raises(VisionlabError, match="no module 'backbone.layer9'"):
        build_model(spec("resnet50", base="finetune", unfreeze_from="backbone.layer9"), 5, load_weights=False)
    assert all(not p.requires_grad for p in model.backbone_parameters())


def test_efficientnet_blocks_and_unfreezing():
    model = build_model(spec("efficientnet_lite0"), 5, load_weights=False)
    assert model.block_names()[2:4] == ["backbone.blocks.0", "backbone.blocks.1"]
    unfrozen = model.unfreeze_from("backbone.blocks.6")
    assert all(name.split(".")[1] in {"blocks", "conv_head", "bn2"} for name in unfrozen)
    model.train()
    assert not model.backbone.bn1.training and model.backbone.bn2.training


# --- weights -------------------------------------------------------------------------------------


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch hub cache, and downloads that fail at once (a proxy on a closed port)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setattr(zoo_weights, "DOWNLOAD_TIMEOUT_S", 2.0)
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    assert zoo_weights.checkpoint_dir() == checkpoints  # torch.hub reads TORCH_HOME at call time
    return checkpoints


def test_written_out_weight_urls_are_torchvisions():
    tvm = torchvision.models
    enums = {
        "mobilenet_v2": tvm.MobileNet_V2_Weights,
        "alexnet": tvm.AlexNet_Weights,
        "inception_v3": tvm.Inception_V3_Weights,
        "vgg16": tvm.VGG16_Weights,
        "vgg19": tvm.VGG19_Weights,
        "resnet50": tvm.ResNet50_Weights,
    }
    assert {arch: enum.IMAGENET1K_V1.url for arch, enum in enums.items()} == zoo_weights.TORCHVISION_URLS


def test_missing_imagenet_weights_say_where_to_put_them(torch_home):
    started = time.monotonic()
    with pytest.raises(MissingArtifactError) as error:
        build_model(spec("vgg16"), 5)
    assert time.monotonic() - started < 10
    message = str(error.value)
    assert "vgg16-397923af.pth" in message and str(torch_home) in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert f"cp vgg16-397923af.pth {torch_home}/" in message
    assert "weights: none" in message
    assert not list(torch_home.glob("*.partial"))


def test_offline_switch_skips_the_download(torch_home, monkeypatch):
    monkeypatch.setenv(zoo_weights.OFFLINE_ENV, "1")
    with pytest.raises(MissingArtifactError, match="mobilenet_v2-b0353104.pth is not in"):
        build_model(spec("mobilenet_v2"), 5)


def test_weights_placed_in_the_cache_are_loaded(torch_home):
    torch.manual_seed(3)
    state = torchvision.models.mobilenet_v2(weights=None).state_dict()
    torch_home.mkdir(parents=True)
    torch.save(state, torch_home / "mobilenet_v2-b0353104.pth")
    model = build_model(spec("mobilenet_v2"), 5)
    assert torch.equal(model.backbone.stem[0].weight, state["features.0.0.weight"])
    assert torch.equal(model.backbone.top[1].running_var, state["features.18.1.running_var"])


def test_download_checks_the_hash_in_the_file_name(torch_home, tmp_path, monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name)
    served = tmp_path / "served"
    served.mkdir()
    state = torchvision.models.mobilenet_v2(weights=None).state_dict()
    torch.save(state, served / "blob")
    data = (served / "blob").read_bytes()
    good, bad = f"mobilenet_v2-{hashlib.sha256(data).hexdigest()[:8]}.pth", "mobilenet_v2-00000000.pth"
    (served / good).write_bytes(data)
    (served / bad).write_bytes(data)
    with serve(served) as (base, _):
        monkeypatch.setattr(zoo_weights, "weights_url", lambda arch: f"{base}/{bad}")
        with pytest.raises(MissingArtifactError, match="do not match the hash 00000000"):
            build_model(spec("mobilenet_v2"), 5)
        assert not (torch_home / bad).exists() and not list(torch_home.glob("*.partial"))
        monkeypatch.setattr(zoo_weights, "weights_url", lambda arch: f"{base}/{good}")
        model = build_model(spec("mobilenet_v2"), 5)
    assert (torch_home / good).is_file()
    assert torch.equal(model.backbone.stem[0].weight, state["features.0.0.weight"])


def test_corrupt_or_wrong_weights_name_the_file(torch_home):
    torch_home.mkdir(parents=True)
    target = torch_home / "mobilenet_v2-b0353104.pth"
    target.write_bytes(b"not a checkpoint")
    with pytest.raises(
        MissingArtifactError, match="mobilenet_v2-b0353104.pth: not a readable PyTorch weights"
    ):
        build_model(spec("mobilenet_v2"), 5)
    torch.save(torchvision.models.mobilenet_v2(weights=None, num_classes=7).state_dict(), target)
    with pytest.raises(MissingArtifactError, match="b0353104.pth: these are not torchvision's mobilenet_v2"):
        build_model(spec("mobilenet_v2"), 5)


def test_checkpoints_rebuild_without_downloading(tmp_path, torch_home):
    finetuned = spec("mobilenet_v2", base="finetune", unfreeze_from="backbone.block14", head={"hidden": [16]})
    model = build_model(finetuned, 3, load_weights=False)
    model.unfreeze_from("backbone.block14")
    save_checkpoint(tmp_path / "m.pt", model, finetuned, ["a", "b", "c"], 96)
    loaded = load_checkpoint(tmp_path / "m.pt").model
    x = torch.rand(1, 3, 96, 96)
    assert torch.allclose(model.eval()(x), loaded(x))

    cats = spec("catsdogs_cnn")
    net = build_model(cats, 2, grayscale=True)
    save_checkpoint(tmp_path / "c.pt", net, cats, ["cat", "dog"], 200, grayscale=True)
    loaded = load_checkpoint(tmp_path / "c.pt").model
    assert loaded.in_channels == 1
    grey = torch.rand(1, 1, 200, 200)
    assert torch.allclose(net.eval()(grey), loaded(grey))


def test_a_checkpoint_of_another_layout_is_a_clear_error(tmp_path):
    cifar = spec("cifar_base")
    model = build_model(cifar, 10)
    save_checkpoint(tmp_path / "m.pt", model, spec("cifar_base", batch_norm=False), list("abcdefghij"), 32)
    with pytest.raises(
        MissingArtifactError, match="m.pt: does not fit the cifar_base model.*rerun the train"
    ):
        load_checkpoint(tmp_path / "m.pt")
