"""The schema of params.yaml: every knob of the pipeline, validated when a stage starts.

A bad value stops the stage before any work, with a message naming the key, e.g.
``params.yaml: train.lr: must be greater than 0 (got -0.1)``.
"""

from __future__ import annotations

import difflib
import math
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlparse

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from visionlab.errors import ParamsError

# Names become DVC stage names, params keys and folders: no dots (DVC reads them as nesting).
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Section):
    """Where a data set's archive comes from and what its bytes must hash to."""

    url: str | None = None
    kaggle: Annotated[str, StringConstraints(pattern=r"^[\w.-]+/[\w.-]+$")] | None = None
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    md5: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{32}$")] | None = None
    size: Annotated[int, Field(gt=0)] | None = None
    filename: str | None = None

    @model_validator(mode="after")
    def _usable(self) -> Source:
        if self.url is None and self.kaggle is None:
            raise ValueError("give a url, a kaggle dataset slug (owner/name), or both")
        if self.url is not None and urlparse(self.url).scheme not in ("http", "https", "file", ""):
            raise ValueError(f"url must be http, https, file or a local path (got {self.url!r})")
        if self.url is None and self.filename is None:
            raise ValueError("a Kaggle-only source needs a filename (the archive's name in a mirror)")
        return self

    @property
    def archive_name(self) -> str:
        """The archive's file name: also its key in a mirror's SHA256SUMS."""
        if self.filename:
            return self.filename
        assert self.url is not None
        return Path(urlparse(self.url).path).name


class DownloadParams(_Section):
    mirror: str | None = None
    retries: Annotated[int, Field(ge=0, le=20)] = 4
    backoff_s: Annotated[float, Field(ge=0)] = 2.0
    timeout_s: Annotated[float, Field(gt=0)] = 60.0
    max_extracted_gb: Annotated[float, Field(gt=0)] = 20.0


class SplitFractions(_Section):
    train: Annotated[float, Field(gt=0, le=1)] = 0.7  # with an official test set, test is unused
    val: Fraction = 0.2
    test: Fraction = 0.1

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitFractions:
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"train + val + test must sum to 1 (got {total:g})")
        return self


class NearDuplicateParams(_Section):
    """Near-copies (a perceptual hash within ``threshold`` bits of 64): one split, or one kept."""

    method: Literal["phash", "dhash"] = "phash"
    threshold: Annotated[int, Field(ge=0, le=32)] = 6
    policy: Literal["same_split", "keep_one", "off"] = "same_split"

    @field_validator("policy", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` as false: take it as the "off" the user wrote.
        return "off" if value is False else value


class PrepareParams(_Section):
    split: SplitFractions = SplitFractions()
    seed: int = 42
    max_per_class: Annotated[int, Field(gt=0)] | None = None
    workers: Annotated[int, Field(ge=0)] = 0
    near_duplicates: NearDuplicateParams = NearDuplicateParams()


class DatasetCard(_Section):
    """One data set: its archive, where the class folders sit inside it, and cleaning rules."""

    source: Source
    root: str  # folder inside the archive that holds the class folders ("" for the top)
    format: Literal["image_folder", "cifar10_pickle"] = "image_folder"
    classes: list[Name] | None = None  # class folders to keep, in label order; null = all
    exclusions: str | None = None
    image_size: Annotated[int, Field(ge=8, le=2048)] | None = None  # default input side
    grayscale: bool = False  # train on one grey channel (the cats-and-dogs study)
    max_per_class: Annotated[int, Field(gt=0)] | None = None  # overrides prepare.max_per_class
    split: SplitFractions | None = None  # overrides prepare.split
    near_duplicates: NearDuplicateParams | None = None  # overrides prepare.near_duplicates


class TransformParams(_Section):
    """Strengths of the offline augmentation; 0 switches a transform off."""

    hflip: Fraction = 0.5
    zoom: Annotated[float, Field(ge=0, lt=1)] = 0.2
    translate: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    contrast: Fraction = 0.3
    rotate: Annotated[float, Field(ge=0, le=180)] = 10.0
    shear: Annotated[float, Field(ge=0, le=45)] = 10.0
    # Degradations users' photos show (evaluate.robustness scores them), each a probability per
    # copy; 0 (the study's setting) = off. downscale: to 25-50% of the side and back; blur:
    # Gaussian, kernel 3-7 px; jpeg: re-compressed at quality 30-90.
    downscale: Fraction = 0.0
    blur: Fraction = 0.0
    jpeg: Fraction = 0.0


class AugmentParams(_Section):
    factor: Annotated[int, Field(ge=1, le=100)] = 5
    image_size: Annotated[int, Field(ge=8, le=2048)] = 224
    seed: int = 42
    workers: Annotated[int, Field(ge=0)] = 0
    jpeg_quality: Annotated[int, Field(ge=50, le=100)] = 95
    transforms: TransformParams = TransformParams()


Positive = Annotated[int, Field(gt=0)]
HostPort = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\[\]:-]+:[0-9]{1,5}$")]
DropoutRate = Annotated[float, Field(ge=0, lt=1)]


class TrainParams(_Section):
    """A training recipe. ``train`` holds the defaults; ``recipes.<name>`` overrides some keys."""

    image_size: Annotated[int, Field(ge=8, le=2048)] = 224
    epochs: Annotated[int, Field(ge=1)] = 30
    batch_size: Annotated[int, Field(ge=1)] = 32
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: Annotated[float, Field(gt=0, le=10)] = 1e-3
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = False
    schedule: Literal["plateau", "cosine", "none"] = "plateau"
    early_stopping_patience: Annotated[int, Field(ge=0)] = 5  # 0 = never stop early
    lr_plateau_factor: Annotated[float, Field(gt=0, lt=1)] = 0.5
    lr_plateau_patience: Annotated[int, Field(ge=0)] = 2
    min_lr: Annotated[float, Field(ge=0)] = 1e-6
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    class_weights: Literal["none", "balanced"] = "none"
    # Two-phase fine-tuning (models with base: finetune): head only, then unfreeze at lower LR.
    head_epochs: Annotated[int, Field(ge=0)] = 5
    finetune_lr_factor: Annotated[float, Field(gt=0, le=1)] = 0.1
    seed: int = 42
    num_workers: Annotated[int, Field(ge=0)] = 2
    # Decode the training and validation images once into memory when they fit in this many GB
    # (0 = always decode on the fly, in num_workers processes).
    preload_max_gb: Annotated[float, Field(ge=0)] = 4.0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto = bfloat16 autocast + channels-last where the device computes bfloat16 natively (CUDA,
    # CPUs with AVX512-BF16/AMX); bf16 = always (emulated on other CPUs: slow); off = float32
    amp: Literal["auto", "bf16", "off"] = "auto"
    resume: bool = True  # continue a killed run from its last epoch checkpoint
    # Data-parallel training (DistributedDataParallel under torch.distributed.run): processes per
    # machine and machines. batch_size is per process, and lr is used as given (not rescaled).
    nproc_per_node: Annotated[int, Field(ge=1, le=1024)] = 1
    nnodes: Annotated[int, Field(ge=1, le=4096)] = 1
    # Rendezvous of several machines, as torchrun's --rdzv-endpoint/--rdzv-id/--rdzv-backend/--node-rank.
    # Where params.yaml is shared by every machine, the per-machine values may come from the
    # environment instead: rdzv_endpoint null = $MASTER_ADDR:$MASTER_PORT, node_rank null = $SLURM_NODEID.
    rdzv_endpoint: HostPort | None = None
    rdzv_id: Name = "visionlab"
    rdzv_backend: Literal["c10d", "static"] = "c10d"
    node_rank: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _launchable(self) -> TrainParams:
        if self.node_rank is not None and self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank: must be below nnodes ({self.nnodes}) (got {self.node_rank})")
        return self


RecipeOverrides = dict[str, Any]

FROM_SCRATCH = (
    "handmade_cnn",
    "simple_cnn",
    "catsdogs_cnn",
    "cifar_base",
    "cifar_inception",
    "cifar_residual",
    "caltech_cnn1",
    "caltech_cnn2",
    "caltech_cnn3",
)
PRETRAINABLE = (
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "mobilenet_v2",
    "alexnet",
    "inception_v3",
    "vgg16",
    "vgg19",
    "resnet50",
)
# Input sides their ImageNet weights were trained at, used unless the model's params set one:
# EfficientNet-Lite scales its resolution with its size (models/efficientnet_lite.py).
NATIVE_IMAGE_SIZE = {"efficientnet_lite1": 240, "efficientnet_lite2": 260}
Arch = Literal[FROM_SCRATCH + PRETRAINABLE]  # type: ignore[valid-type]


class HeadParams(_Section):
    """The new classifier on a transfer-learning backbone.

    ``native`` keeps the backbone's own classifier and retrains only its last layer(s), as the
    VGG19 and AlexNet studies did; otherwise: global ``pool``, then ``hidden`` dense layers (each
    ReLU, optional batch norm, then ``dropout``), then the class layer.
    """

    native: bool = False
    pool: Literal["avg", "max"] = "avg"
    hidden: list[Positive] = []
    dropout: DropoutRate = 0.0
    batch_norm: bool = False
    l2: Annotated[float, Field(ge=0)] = 0.0  # on the head's dense kernels


# Keys of train that the featurize stage reads. dvc.yaml lists train.<key> as its params, not
# recipes nor train_overrides (an lr change must not recompute features), so only train: sets them.
FEATURE_KEYS = frozenset({"image_size", "device", "amp"})


class ModelParams(_Section):
    """An architecture and how its base is treated; head knobs apply to the new classifier."""

    # Required, not defaulted: the featurize stage lists these keys as DVC params, and DVC
    # needs them present in params.yaml.
    arch: Arch
    weights: Literal["none", "imagenet"]
    base: Literal["trainable", "frozen", "finetune"]
    # Train on the offline-augmented copies. In params.yaml each experiment decides
    # (experiments.<name>.train_images), because dvc.yaml derives its data deps from that key.
    augmented: bool = False
    unfreeze_from: str | None = None  # finetune: first module trained in phase two
    # finetune: featurize caches the activations entering unfreeze_from, so phase two runs only
    # the top blocks (training/features.py); stored in this precision, or off = train on images
    activation_cache: Literal["bfloat16", "float32", "off"] = "bfloat16"
    normalize: Literal["auto", "unit", "imagenet", "caffe"] = "auto"
    image_size: Annotated[int, Field(ge=8, le=2048)] | None = None  # e.g. InceptionV3's 299
    dropout: DropoutRate = 0.3
    dense_dropout: DropoutRate = 0.1
    batch_norm: bool = True  # from-scratch nets that the studies built with and without it
    l2: Annotated[float, Field(ge=0)] = 0.0  # on the backbone's / from-scratch net's kernels
    head: HeadParams = HeadParams()

    @model_validator(mode="after")
    def _consistent(self) -> ModelParams:
        if self.arch in FROM_SCRATCH and self.weights != "none":
            raise ValueError(f"{self.arch} has no pretrained weights: set weights: none")
        if self.base in ("frozen", "finetune") and self.weights == "none":
            raise ValueError(f"a {self.base} base needs pretrained weights: set weights: imagenet")
        if self.base == "finetune" and not self.unfreeze_from:
            raise ValueError("base: finetune needs unfreeze_from (the first module to train in phase two)")
        if self.base != "finetune" and self.unfreeze_from:
            raise ValueError("unfreeze_from applies only to base: finetune")
        return self


class ExperimentParams(_Section):
    """One experiment: a data set, a model and a training recipe, with optional local tweaks.

    dvc.yaml reads ``train_images`` and the three override maps of every experiment (its data
    deps and featurize's params), so params.yaml spells them out, empty maps included.
    """

    dataset: Name
    model: Name
    recipe: Name  # required: dvc.yaml tracks recipes.<recipe> as this experiment's params
    # Which images train it: data/<train_images>/<dataset> is its DVC dep, so an experiment that
    # trains on the prepared images neither waits for nor reruns after the augment stage.
    # None (code and tests only) = the model's ``augmented``.
    train_images: Literal["prepared", "augmented"] | None = None
    model_overrides: dict[str, Any] = {}  # keys of models.<model>, e.g. {head: {dropout: 0.2}}
    train_overrides: dict[str, Any] = {}  # keys of train, e.g. {lr: 0.0003}
    explain_overrides: dict[str, Any] = {}  # keys of explain, e.g. {target_layer: features.28}


# evaluate.robustness names: <kind>_<amount>, e.g. downscale_128 (a 128 px short side and back up),
# jpeg_30 (re-encoded at JPEG quality 30), blur_2 (Gaussian blur, radius 2 px)
DEGRADATION = re.compile(r"^(downscale|jpeg|blur)_([1-9][0-9]*)$")


class EvaluateParams(_Section):
    batch_size: Annotated[int, Field(ge=1)] = 64
    num_workers: Annotated[int, Field(ge=0)] = 2
    # Test-time augmentation, scored beside the plain test accuracy: hflip = mean of the class
    # probabilities of the image and its mirror image.
    tta: list[Literal["hflip"]] = []
    robustness: list[str] = []  # the test split degraded, one metric each (DEGRADATION above)

    @field_validator("robustness")
    @classmethod
    def _degradations(cls, names: list[str]) -> list[str]:
        for name in names:
            match = DEGRADATION.match(name)
            if not match:
                raise ValueError(f"{name!r}: expected downscale_<px>, jpeg_<quality> or blur_<radius>")
            if match[1] == "jpeg" and int(match[2]) > 100:
                raise ValueError(f"{name!r}: JPEG quality goes from 1 to 100")
        return names


class ExplainParams(_Section):
    """The explain stage: Grad-CAM(++), guided backprop, feature maps, filters, top patches."""

    images_per_class: Annotated[int, Field(ge=1, le=50)] = 2
    target_layer: str | None = None  # null = the model's cam_layer()
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.5
    gradcam_class: str | None = None  # also explain this class for every image; null = predicted only
    feature_map_image: str | None = None  # a test image path; null = the first correct test image
    feature_map_layers: list[str] | None = None  # null = every conv layer
    feature_map_max_channels: Annotated[int, Field(ge=1)] | None = 64  # null = all channels
    patches_top_k: Annotated[int, Field(ge=1, le=64)] = 8
    patches_max_images: Annotated[int, Field(ge=1)] | None = 500  # test images scanned; null = all
    patch_units: list[str] = []  # extra "layer:channel" units, besides every output class
    device: Literal["auto", "cpu", "cuda"] = "auto"


class ReportParams(_Section):
    """The report stage: every experiment compared, and each data set's best model registered."""

    published: str = "config/published_results.yaml"  # the studies' published test accuracies
    thumbnails: Annotated[int, Field(ge=0, le=50)] = 8  # explanation thumbnails per model
    thumbnail_px: Annotated[int, Field(ge=16, le=512)] = 96
    register_best: bool = True  # best model per data set -> registry <registry_prefix>-<dataset>@best
    registry_prefix: Name = "visionlab"


class Params(_Section):
    datasets: dict[Name, DatasetCard]
    download: DownloadParams = DownloadParams()
    prepare: PrepareParams = PrepareParams()
    augment: AugmentParams = AugmentParams()
    train: TrainParams = TrainParams()
    recipes: dict[Name, dict[str, Any]] = {}  # named partial overrides of train
    models: dict[Name, ModelParams]
    experiments: dict[Name, ExperimentParams]
    evaluate: EvaluateParams = EvaluateParams()
    explain: ExplainParams = ExplainParams()
    report: ReportParams = ReportParams()

    @model_validator(mode="after")
    def _references_exist(self) -> Params:
        for name, exp in self.experiments.items():
            if exp.dataset not in self.datasets:
                raise ValueError(
                    f"experiments.{name}.dataset: unknown data set {exp.dataset!r}"
                    + unknown_name(exp.dataset, self.datasets)
                )
            if exp.model not in self.models:
                raise ValueError(
                    f"experiments.{name}.model: unknown model {exp.model!r}"
                    + unknown_name(exp.model, self.models)
                )
            if exp.recipe not in self.recipes:
                raise ValueError(
                    f"experiments.{name}.recipe: unknown recipe {exp.recipe!r}"
                    + unknown_name(exp.recipe, self.recipes)
                )
        for name, overrides in self.recipes.items():
            _merged(TrainParams, self.train.model_dump(), overrides or {}, f"recipes.{name}")
            # featurize's DVC params are train.<key>, not recipes (see FEATURE_KEYS).
            forbidden = sorted(FEATURE_KEYS & set(overrides or {}))
            if forbidden:
                key = forbidden[0]
                where = "train: or in the model's image_size" if key == "image_size" else f"train.{key}"
                raise ValueError(
                    f"recipes.{name}.{key}: a recipe cannot set {key} (cached features depend on it); "
                    f"set it in {where}"
                )
        for name, exp in self.experiments.items():
            if exp.train_images is not None:
                for where, section in (
                    (f"models.{exp.model}", self.models[exp.model].model_fields_set),
                    (f"experiments.{name}.model_overrides", exp.model_overrides),
                ):
                    if "augmented" in section:
                        raise ValueError(
                            f"{where}.augmented: experiments.{name}.train_images decides which images "
                            "it trains on; remove augmented"
                        )
            # train_overrides belong to train, not to featurize (see FEATURE_KEYS).
            forbidden = sorted(FEATURE_KEYS & set(exp.train_overrides))
            if forbidden:
                key = forbidden[0]
                where = "model_overrides.image_size" if key == "image_size" else f"train.{key}"
                raise ValueError(
                    f"experiments.{name}.train_overrides.{key}: cached features depend on {key}, "
                    f"so set it in {where} instead"
                )
            self.model_of(name)
            self.recipe_of(name)
            self.explain_of(name)
        return self

    def dataset(self, name: str) -> DatasetCard:
        if name not in self.datasets:
            raise ParamsError(
                f"params.yaml: datasets.{name}: no such data set{unknown_name(name, self.datasets)}"
            )
        return self.datasets[name]

    def experiment(self, name: str) -> ExperimentParams:
        if name not in self.experiments:
            raise ParamsError(
                f"params.yaml: experiments.{name}: no such experiment{unknown_name(name, self.experiments)}"
            )
        return self.experiments[name]

    def dataset_of(self, experiment: str) -> DatasetCard:
        return self.dataset(self.experiment(experiment).dataset)

    def model_of(self, experiment: str) -> ModelParams:
        """The experiment's model with its ``model_overrides`` and ``train_images`` applied."""
        exp = self.experiment(experiment)
        overrides = dict(exp.model_overrides)
        if exp.train_images is not None and isinstance(exp.model_overrides, dict):
            overrides["augmented"] = exp.train_images == "augmented"
        return _merged(
            ModelParams,
            self.models[exp.model].model_dump(),
            overrides,
            f"experiments.{experiment}.model_overrides",
        )

    def recipe_of(self, experiment: str) -> TrainParams:
        """``train``, then the experiment's recipe, then its ``train_overrides``."""
        exp = self.experiment(experiment)
        base = _merged(
            TrainParams, self.train.model_dump(), self.recipes.get(exp.recipe) or {}, f"recipes.{exp.recipe}"
        )
        return _merged(
            TrainParams, base.model_dump(), exp.train_overrides, f"experiments.{experiment}.train_overrides"
        )

    def explain_of(self, experiment: str) -> ExplainParams:
        """``explain`` with the experiment's ``explain_overrides`` (a layer name fits one model only)."""
        exp = self.experiment(experiment)
        return _merged(
            ExplainParams,
            self.explain.model_dump(),
            exp.explain_overrides,
            f"experiments.{experiment}.explain_overrides",
        )

    def image_size_of(self, experiment: str) -> int:
        """Input side: the model's own, else its arch's native one, else the data set's, else the recipe's."""
        model = self.model_of(experiment)
        return (
            model.image_size
            or NATIVE_IMAGE_SIZE.get(model.arch)
            or self.dataset_of(experiment).image_size
            or self.recipe_of(experiment).image_size
        )


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _merged(schema: type[_Section], base: dict[str, Any], overrides: dict[str, Any], where: str):
    """``base`` with ``overrides`` laid over it, validated; errors name the override's key."""
    if not isinstance(overrides, dict):
        raise ParamsError(f"params.yaml: {where}: expected a mapping (got {overrides!r})")
    try:
        return schema.model_validate(_deep_merge(base, overrides))
    except ValidationError as exc:
        lines = [f"params.yaml: {where}.{_describe(err, schema)}" for err in exc.errors()]
        raise ParamsError("\n".join(lines)) from None


def unknown_name(name: str, known) -> str:
    """`` (did you mean 'x'? known: a, b)``: the tail of an unknown-name message."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f" ({hint}known: {', '.join(names) or 'none'})"


def _fields_at(schema: Any, loc: tuple) -> list[str]:
    """The keys allowed beside the last part of ``loc`` inside ``schema``, for a "did you mean"."""
    node = schema
    for part in loc[:-1]:
        node = _unwrap(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            if field is None:
                return []
            node = field.annotation
        elif get_origin(node) is dict:
            node = get_args(node)[1]
        else:
            return []
    node = _unwrap(node)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """``X`` from ``X | None`` and ``Annotated[X, ...]``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _describe(error: dict[str, Any], schema: Any = None) -> str:
    key = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key"
        known = _fields_at(schema, tuple(error["loc"])) if schema is not None else []
        close = difflib.get_close_matches(str(error["loc"][-1]), known, n=1, cutoff=0.6)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    elif kind == "missing":
        message = "required key is missing"
    else:
        message = error["msg"].removeprefix("Value error, ")
        if "input" in error and not isinstance(error["input"], dict):
            message += f" (got {error['input']!r})"
    if key and kind == "value_error" and re.match(r"^[a-z_]+: ", message):
        return f"{key}.{message}"  # a check across keys names the key at fault: train.nnodes
    return f"{key}: {message}" if key else message


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate an already-parsed params mapping; raise ParamsError naming every bad key."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{source}: {_describe(err, Params)}" for err in exc.errors()]
        raise ParamsError("\n".join(lines)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found (run stages from the project root)") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(raw, str(path))
