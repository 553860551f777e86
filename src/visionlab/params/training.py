"""The training sections of params.yaml: the train recipe, models and experiments."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_serializer, model_validator
from pydantic_core import PydanticCustomError

from visionlab.params import architectures
from visionlab.params.common import DropoutRate, Fraction, HostPort, Name, Positive, Section, Workers, YamlOff


class TrainParams(Section):
    """A training recipe. ``train`` holds the defaults; ``recipes.<name>`` overrides some keys."""

    image_size: Annotated[int, Field(ge=8, le=2048)] = 224
    epochs: Annotated[int, Field(ge=1)] = 30
    batch_size: Annotated[int, Field(ge=1)] = 32
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: Annotated[float, Field(gt=0, le=10)] = 1e-3
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.9
    nesterov: bool = False
    # cosine: stepped once an epoch; cosine_batch: after every optimiser step, so a short budget
    # anneals smoothly to min_lr at its last batch
    schedule: Literal["plateau", "cosine", "cosine_batch", "none"] = "plateau"
    early_stopping_patience: Annotated[int, Field(ge=0)] = 5  # 0 = never stop early
    lr_plateau_factor: Annotated[float, Field(gt=0, lt=1)] = 0.5
    lr_plateau_patience: Annotated[int, Field(ge=0)] = 2
    min_lr: Annotated[float, Field(ge=0)] = 1e-6
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    # mixup: each batch is blended with a shuffled copy of itself, inputs and labels alike, by a share
    # drawn from Beta(alpha, alpha); on cached features or activations it mixes them (manifold
    # mixup), at no featurize cost. 0 = off.
    mixup_alpha: Annotated[float, Field(ge=0, le=10)] = 0.0
    class_weights: Literal["none", "balanced"] = "none"
    # Two-phase fine-tuning (models with base: finetune): head only, then unfreeze at lower LR.
    head_epochs: Annotated[int, Field(ge=0)] = 5
    # Quick tries: every experiment's epochs at most this, whatever its recipe sets (head epochs at
    # most half of it). A run with a cap is a quick try: tagged so, never a data set's @best.
    epochs_cap: Annotated[int, Field(ge=1)] | None = None
    finetune_lr_factor: Annotated[float, Field(gt=0, le=1)] = 0.1
    # Batch norm in the fine-tuned blocks: train (normalise by each batch, update the running
    # statistics) or frozen (stay on the pretrained running statistics; scale and shift still train).
    finetune_batch_norm: Literal["train", "frozen"] = "train"
    seed: int = 42
    num_workers: Workers = 2
    # Decode the training and validation images once into memory when they fit in this many GB
    # (0 = always decode on the fly, in num_workers processes).
    preload_max_gb: Annotated[float, Field(ge=0)] = 4.0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto = bfloat16 autocast + channels-last where the device computes bfloat16 natively (CUDA,
    # CPUs with AVX512-BF16/AMX); bf16 = always (emulated on other CPUs: slow); off = float32
    amp: Annotated[Literal["auto", "bf16", "off"], YamlOff] = "auto"
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

# Keys of train that say where and how fast a run goes, not what it learns: dvc.yaml's train stage
# does not depend on them (a new rendezvous per job must not retrain) and neither does the resume
# key. The number of processes is not among them: it sets the global batch.
RUNTIME_KEYS = frozenset(
    {
        "device",  # `auto` picks a GPU where there is one: the same params run anywhere
        "num_workers",
        "preload_max_gb",
        "resume",
        "rdzv_endpoint",
        "rdzv_id",
        "rdzv_backend",
        "node_rank",
    }
)

# Keys of train added after runs were cached, each with its value that trains as before (off): at
# that value they stay out of the train record and the resume key, so adding the knob retrains and
# orphans nothing; any other value is in both.
ADDED_OFF = {"mixup_alpha": 0.0, "finetune_batch_norm": "train"}


def without_added_off(train: dict[str, Any]) -> dict[str, Any]:
    """``train``'s values (by key) without the ADDED_OFF keys that are at their off value."""
    return {k: v for k, v in train.items() if not (k in ADDED_OFF and v == ADDED_OFF[k])}


# Every params.yaml key of where and how fast a stage runs, in every section: no stage's DVC
# params list names one (tests/integration/test_params_reads.py holds dvc.yaml to it). The mirror
# is not among them: its SHA256SUMS stands in for the card's pin, so it can name other bytes.
RUNTIME_PARAMS = frozenset(
    {f"train.{key}" for key in RUNTIME_KEYS}
    | {f"download.{key}" for key in ("retries", "backoff_s", "timeout_s", "max_extracted_gb")}
    | {"evaluate.batch_size", "evaluate.num_workers"}
)


def _known_architecture(name: str) -> str:
    """``model.arch``: a name in the architecture catalog (params/architectures.py)."""
    known = architectures.names()
    if name not in known:
        listed = ", ".join(repr(n) for n in known[:-1]) + f" or {known[-1]!r}"
        # The wording pydantic gives a Literal, so the error reads as every other choice's does.
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": listed})
    return name


Arch = Annotated[str, AfterValidator(_known_architecture)]


class HeadParams(Section):
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


class TrainDegradationParams(Section):
    """The share of training images shown degraded, each drawn per image, once or every epoch
    (runtime/degrade.py: a 64-160 px short side and back, Gaussian blur of radius 0.5-2.5, JPEG
    quality 15-60), so a model learns what evaluate.robustness scores it on."""

    downscale: Fraction = 0.0
    jpeg: Fraction = 0.0
    blur: Fraction = 0.0
    seed: int = 0  # which images, and how much: the same for every rerun
    # false: each image drawn once and kept every epoch (a cache can hold it); true: drawn afresh
    # every epoch, so the net sees an image clean in some epochs and degraded in others (images
    # only: a trainable base, or finetune with activation_cache: off)
    redraw: bool = False

    @model_serializer(mode="wrap")
    def _redraw_only_where_set(self, handler: Any) -> Any:
        # Added after rows were trained: left off, it stays out of every dump (featurize's and
        # train's records, the resume key, MLflow's params), so nothing reruns or loses its checkpoint.
        dumped = handler(self)
        if not self.redraw:
            dumped.pop("redraw", None)
        return dumped


class ModelParams(Section):
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
    # the top blocks (training/featurize_stage.py); stored in this precision, or off = train on images
    activation_cache: Annotated[Literal["bfloat16", "float32", "off"], YamlOff] = "bfloat16"
    normalize: Literal["auto", "unit", "imagenet", "caffe"] = "auto"
    image_size: Annotated[int, Field(ge=8, le=2048)] | None = None  # e.g. InceptionV3's 299
    # Read the images grey (one channel) or in colour; null = as the data set's card says (the
    # cats-and-dogs study's grey CNN, where a pretrained model may want colour)
    grayscale: bool | None = None
    # Train (and featurize's cache of the train split) on a share of degraded images; null = none.
    # Validation and test stay as they are: evaluate.robustness scores their degraded copies.
    train_degradations: TrainDegradationParams | None = None
    dropout: DropoutRate = 0.3
    dense_dropout: DropoutRate = 0.1
    batch_norm: bool = True  # from-scratch nets that the studies built with and without it
    l2: Annotated[float, Field(ge=0)] = 0.0  # on the backbone's / from-scratch net's kernels
    head: HeadParams = HeadParams()

    @model_validator(mode="after")
    def _consistent(self) -> ModelParams:
        if not architectures.architecture(self.arch).pretrainable and self.weights != "none":
            raise ValueError(f"{self.arch} has no pretrained weights: set weights: none")
        if self.base in ("frozen", "finetune") and self.weights == "none":
            raise ValueError(f"a {self.base} base needs pretrained weights: set weights: imagenet")
        if self.base == "finetune" and not self.unfreeze_from:
            raise ValueError("base: finetune needs unfreeze_from (the first module to train in phase two)")
        if self.base != "finetune" and self.unfreeze_from:
            raise ValueError("unfreeze_from applies only to base: finetune")
        cached = self.base == "frozen" or (self.base == "finetune" and self.activation_cache != "off")
        if self.train_degradations is not None and self.train_degradations.redraw and cached:
            raise ValueError(
                "train_degradations.redraw: featurize caches one copy of each training image for a "
                f"{self.base} base; redraw needs base: trainable, or activation_cache: off"
            )
        return self


class ExperimentParams(Section):
    """One experiment: a data set, a model and a training recipe, with optional local tweaks.

    dvc.yaml reads ``train_images`` of every experiment (its data deps), so params.yaml spells it
    out. The override maps are optional: train and explain depend on the resolve stage's records of
    the params they read (visionlab.params.resolved), not on these keys.
    """

    dataset: Name
    model: Name
    recipe: Name  # required: the train record holds recipes.<recipe> (visionlab.params.resolved)
    # Which images train it: data/<train_images>/<dataset> is its DVC dep, so an experiment that
    # trains on the prepared images neither waits for nor reruns after the augment stage.
    # None (code and tests only) = the model's ``augmented``.
    train_images: Literal["prepared", "augmented"] | None = None
    model_overrides: dict[str, Any] = {}  # keys of models.<model>, e.g. {head: {dropout: 0.2}}
    train_overrides: dict[str, Any] = {}  # keys of train, e.g. {lr: 0.0003}
    explain_overrides: dict[str, Any] = {}  # keys of explain, e.g. {target_layer: features.28}
