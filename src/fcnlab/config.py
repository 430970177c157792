"""Run configuration: typed dataclasses, YAML loading, validation and dotted overrides.

This is the only module that knows YAML. A configuration has seven sections::

    model:  name, num_classes, encoder, encoder_weights, options, init_from
    data:   name, root, train_split, val_split, options, val_options, transforms, num_workers, ...
    train:  optimizer, schedule, batch size, accumulation, clipping, amp, seed, ...
    stages: a list of {name, epochs | iterations, encoder: frozen | trainable, lr, encoder_lr_mult}
    eval:   how often and how to evaluate
    output: where the run folder goes
    segmentation: loss, class_weights, aux_weight (used by segmentation models only)

Configs written before the ``segmentation`` section existed set those three keys under ``train``;
they are still read, moved to the new section with a FutureWarning.

Every key is checked on load: an unknown key or a value of the wrong type or outside the allowed
set is a :class:`ConfigError` naming the key, the value and what is allowed. Every number is
checked against the range its field declares (``lr`` > 0, ``weight_decay`` >= 0, ``flip`` in
[0, 1], ...), so ``stages.1.lr = -0.1 must be > 0`` is said at load, not by PyTorch mid-run.
Overrides use dotted paths with list indices, ``train.batch_size=8 stages.0.epochs=2``; the value
is read as YAML.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key, the value and the rule."""


class FieldError(ConfigError):
    """A field's value breaks its rule; the section that holds the field puts its path in front
    of ``key`` (``lr`` in the second stage becomes ``stages.1.lr``)."""

    def __init__(self, key: str, value: Any, rule: str) -> None:
        super().__init__(f"{key} = {value!r} {rule}")
        self.key, self.value, self.rule = key, value, rule

    def under(self, prefix: str) -> ConfigError:
        """The same error with ``prefix.`` in front of its key."""
        return ConfigError(f"{prefix}.{self.key} = {self.value!r} {self.rule}")


@dataclass(frozen=True)
class Range:
    """The numbers a field allows: from ``low`` to ``high`` (None: unbounded), each end included
    unless its ``_open`` flag says otherwise; never NaN or infinite."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allows(self, value: float) -> bool:
        """Whether ``value`` is finite and inside the range."""
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def rule(self, value: float) -> str:
        """What the range asks of ``value``, as the end of a sentence: ``"must be > 0"``."""
        if not math.isfinite(value):
            return "must be a finite number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"must be in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            if not self.low_open and float(self.low).is_integer() and isinstance(value, int):
                return f"must be at least {self.low:g}"
            return f"must be {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"must be {'<' if self.high_open else '<='} {self.high:g}"
        return "must be a finite number"


def in_range(*args: Any, **kwargs: Any) -> Mapping[str, Range]:
    """Field metadata declaring the :class:`Range` of a number field (or of each list item):
    ``lr: float = field(default=0.01, metadata=POSITIVE)``; :func:`check_numbers` enforces it."""
    return types.MappingProxyType({"range": Range(*args, **kwargs)})


ANY_NUMBER = in_range()
POSITIVE = in_range(0, low_open=True)
NON_NEGATIVE = in_range(0)
AT_LEAST_ONE = in_range(1)
FRACTION = in_range(0, 1)
BELOW_ONE = in_range(0, 1, high_open=True)
# A label a mask PNG (8 or 16 bits) can hold.
LABEL = in_range(0, 2**16 - 1)


def check_numbers(section: Any) -> None:
    """Raise a :class:`FieldError` for the first field of the dataclass ``section`` (or list item)
    outside its declared :class:`Range`. Values of the wrong type are left to the loader's type
    check, which names them first."""
    for spec in dataclasses.fields(section):
        allowed = spec.metadata.get("range")
        value = getattr(section, spec.name)
        if allowed is None or value is None:
            continue
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            is_number = isinstance(item, (int, float)) and not isinstance(item, bool)
            if is_number and not allowed.allows(item):
                key = spec.name if index is None else f"{spec.name}.{index}"
                raise FieldError(key, item, allowed.rule(item))


@dataclass
class ModelConfig:
    """Which model to build: ``fcnlab.models.build_model(name, num_classes, encoder, ...)``."""

    name: str = "fcn8s"
    num_classes: int = field(default=21, metadata=AT_LEAST_ONE)
    encoder: str | None = None
    encoder_weights: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # Start from these weights (a checkpoint or .safetensors): every parameter whose name and
    # shape match is copied; FCN-16s starts from FCN-32s this way, FCN-8s from FCN-16s.
    init_from: str | None = None

    def __post_init__(self) -> None:
        check_numbers(self)


@dataclass
class TransformConfig:
    """Joint image/mask augmentation for training and the normalisation shared with evaluation."""

    # Random scale, crop (padded with ignore) and flip apply when crop_size is set.
    crop_size: int | None = field(default=None, metadata=AT_LEAST_ONE)
    scale_range: list[float] | None = field(default=None, metadata=POSITIVE)
    flip: float = field(default=0.0, metadata=FRACTION)  # the probability of a horizontal flip
    jitter: float = field(default=0.0, metadata=NON_NEGATIVE)
    # Evaluation images are resized to eval_size when set, else used at their own size.
    eval_size: int | None = field(default=None, metadata=AT_LEAST_ONE)
    normalize: bool = True
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN), metadata=ANY_NUMBER)
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD), metadata=POSITIVE)

    def __post_init__(self) -> None:
        check_numbers(self)
        if self.scale_range is not None and (
            len(self.scale_range) != 2 or self.scale_range[0] > self.scale_range[1]
        ):
            raise FieldError(
                "scale_range", self.scale_range, "must be [low, high] with 0 < low <= high"
            )
        for name in ("mean", "std"):
            if len(getattr(self, name)) != 3:
                raise FieldError(name, getattr(self, name), "must have 3 values (RGB)")


@dataclass
class DataConfig:
    """Which data set: ``fcnlab.data.build_dataset(name, root, split, transforms, **options)``."""

    name: str = "shapes"
    root: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    options: dict[str, Any] = field(default_factory=dict)
    # Merged over ``options`` for the validation split (e.g. a different seed for Shapes).
    val_options: dict[str, Any] = field(default_factory=dict)
    transforms: TransformConfig = field(default_factory=TransformConfig)
    num_workers: int = field(default=0, metadata=NON_NEGATIVE)
    ignore_index: int = field(default=255, metadata=LABEL)
    # Decode the training and validation files into memory once, before training starts
    # (fcnlab.data.cache): every epoch then skips the decoding, its augmentation unchanged.
    cache: bool = False

    def __post_init__(self) -> None:
        check_numbers(self)


@dataclass
class StageConfig:
    """One stage of the recipe: a length, the encoder's state and the learning rates."""

    name: str = ""
    epochs: int | None = field(default=None, metadata=AT_LEAST_ONE)
    iterations: int | None = field(default=None, metadata=AT_LEAST_ONE)
    encoder: Literal["frozen", "trainable"] = "trainable"
    lr: float = field(default=0.01, metadata=POSITIVE)
    # The encoder's learning rate is lr times this; 0 keeps a trainable encoder's weights.
    encoder_lr_mult: float = field(default=1.0, metadata=NON_NEGATIVE)

    def __post_init__(self) -> None:
        check_numbers(self)
        if (self.epochs is None) == (self.iterations is None):
            raise ConfigError(
                f"stage {self.name!r} sets epochs={self.epochs} and iterations="
                f"{self.iterations}; set exactly one of them"
            )


@dataclass
class TrainConfig:
    """The optimiser, schedule and loop settings shared by every stage."""

    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = field(default=0.9, metadata=BELOW_ONE)
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999], metadata=BELOW_ONE)
    weight_decay: float = field(default=1e-4, metadata=NON_NEGATIVE)
    schedule: Literal["constant", "poly", "cosine", "step"] = "poly"
    warmup_steps: int = field(default=0, metadata=NON_NEGATIVE)
    warmup_factor: float = field(default=0.001, metadata=FRACTION)
    poly_power: float = field(default=0.9, metadata=NON_NEGATIVE)
    step_size: int = field(default=1000, metadata=AT_LEAST_ONE)
    # schedule "step" with milestones: multiply by gamma at each listed stage step (the detection
    # papers' "drop at 60k and 80k"); without: every step_size steps.
    milestones: list[int] | None = field(default=None, metadata=AT_LEAST_ONE)
    gamma: float = field(default=0.1, metadata=POSITIVE)
    min_lr_factor: float = field(default=0.0, metadata=FRACTION)
    batch_size: int = field(default=8, metadata=AT_LEAST_ONE)
    grad_accum: int = field(default=1, metadata=AT_LEAST_ONE)
    clip_grad_norm: float | None = field(default=None, metadata=POSITIVE)
    amp: Literal["off", "bf16", "fp16"] = "off"
    channels_last: bool = False
    compile: bool = False
    # cuDNN times every convolution algorithm on the first batch of each input shape and keeps
    # the fastest: quicker steps for fixed-size inputs, but the trials allocate workspaces
    # that raise the peak memory, and every new shape is timed again. Off, as in detectron2
    # and MMEngine; ignored with ``deterministic`` and on the CPU.
    cudnn_benchmark: bool = False
    device: str = "auto"
    sync_bn: bool = False
    # NumPy's SeedSequence, which mixes the per-sample seeds, takes no negative seed.
    seed: int = field(default=0, metadata=NON_NEGATIVE)
    deterministic: bool = False
    log_every: int = field(default=10, metadata=AT_LEAST_ONE)
    # Also write last.pt every this many steps inside an epoch (0 or null: only at epoch and
    # stage ends), so that a crash or kill -9 loses at most that many steps.
    checkpoint_every_steps: int | None = field(default=None, metadata=NON_NEGATIVE)

    def __post_init__(self) -> None:
        check_numbers(self)
        if self.milestones is not None and self.milestones != sorted(set(self.milestones)):
            raise FieldError("milestones", self.milestones, "must be increasing steps >= 1")
        if len(self.betas) != 2:
            raise FieldError("betas", self.betas, "must be two numbers [beta1, beta2]")


@dataclass
class SegmentationConfig:
    """Options only a segmentation model uses (the segmentation task validates them); a detector
    brings its own loss."""

    # fcnlab.losses.build_loss spec: "ce", or {"ce": 1.0, "dice": 0.5}, or {"ce": {"weight": 1,
    # "reduction": "sum"}} for the original FCN's unnormalised loss.
    loss: str | dict[str, Any] = "ce"
    class_weights: list[float] | None = field(default=None, metadata=NON_NEGATIVE)
    aux_weight: float = field(default=0.5, metadata=NON_NEGATIVE)

    def __post_init__(self) -> None:
        check_numbers(self)


# Keys that moved from ``train`` to the ``segmentation`` section; old configs are still read.
MOVED_TO_SEGMENTATION = ("loss", "class_weights", "aux_weight")


@dataclass
class EvalConfig:
    """Evaluation during training and by ``fcnlab eval``."""

    # 0: only at the end of each stage.
    every_epochs: int = field(default=1, metadata=NON_NEGATIVE)
    batch_size: int = field(default=1, metadata=AT_LEAST_ONE)
    num_overlays: int = field(default=4, metadata=NON_NEGATIVE)

    def __post_init__(self) -> None:
        check_numbers(self)


@dataclass
class OutputConfig:
    """Where the run folder ``ROOT/NAME`` goes and what is written there."""

    root: str = "runs"
    name: str = "run"
    tensorboard: bool = True  # used when the ``tensorboard`` package is installed
    plots: bool = True


def _default_stages() -> list[StageConfig]:
    return [
        StageConfig(name="decoder", epochs=1, encoder="frozen", lr=0.01),
        StageConfig(name="fine-tune", epochs=1, encoder="trainable", lr=0.01, encoder_lr_mult=0.1),
    ]


@dataclass
class Config:
    """A whole run. Build it in code or with :func:`load_config`; check it with :func:`validate`."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stages: list[StageConfig] = field(default_factory=_default_stages)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)

    def __post_init__(self) -> None:
        if not self.stages:
            raise ConfigError("stages is empty; a run needs at least one stage")

    @property
    def run_dir(self) -> Path:
        """The run folder, ``output.root/output.name``."""
        return Path(self.output.root) / self.output.name


D = TypeVar("D")


def _type_name(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(kind))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(kind))
    if kind is type(None):
        return "null"
    if dataclasses.is_dataclass(kind):
        return "a mapping"
    return getattr(kind, "__name__", str(kind))


def _convert(value: Any, kind: Any, key: str) -> Any:
    """``value`` checked and converted to the annotated type ``kind``; ``key`` names it."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    bad = ConfigError(f"{key} = {value!r} is not {_type_name(kind)}")
    if kind is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, key)
            except ConfigError:
                continue
        raise bad
    if origin is Literal:
        # YAML 1.1 (PyYAML) reads an unquoted off/on as a boolean: `amp: off` means "off".
        if isinstance(value, bool) and (spelled := "on" if value else "off") in args:
            return spelled
        if value in args:
            return value
        raise ConfigError(
            f"{key} = {value!r} is not allowed; allowed: {', '.join(repr(a) for a in args)}"
        )
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, Mapping):
            raise bad
        return _build(kind, value, key)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise bad
        return [_convert(item, args[0], f"{key}.{i}") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad
        return {str(k): _convert(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if kind is float:
        # PyYAML reads 1e-10 (no dot) as a string; accept any number spelling.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if kind is str:
        if isinstance(value, str):
            return value
        raise bad
    raise TypeError(f"config field {key} has an unsupported annotation {kind!r}")


def _build(cls: type[D], data: Mapping[str, Any], prefix: str = "") -> D:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"unknown key {where!r}; allowed keys here: {', '.join(names)}")
    values = {
        key: _convert(value, hints[key], f"{prefix}.{key}" if prefix else key)
        for key, value in data.items()
    }
    try:
        return cls(**values)
    except FieldError as error:
        raise (error.under(prefix) if prefix else ConfigError(str(error))) from None
    except ConfigError as error:
        raise ConfigError(f"{prefix}: {error}" if prefix else str(error)) from None


def config_from_dict(
    data: Mapping[str, Any], source: str = "<dict>", warn_moved: bool = True
) -> Config:
    """A validated :class:`Config` from plain data; errors start with ``source``.

    Keys from before the ``segmentation`` section are moved there, with a FutureWarning unless
    ``warn_moved`` is False (a config stored inside an old checkpoint: nothing to edit)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a configuration is a mapping of sections, got {data!r}")
    try:
        return _build(Config, _move_segmentation_keys(data, source, warn_moved))
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def _move_segmentation_keys(
    data: Mapping[str, Any], source: str, warn: bool = True, replace: bool = False
) -> Mapping[str, Any]:
    """``data`` with ``train.loss``/``class_weights``/``aux_weight`` (before fcnlab 0.2) moved to
    the ``segmentation`` section, with a FutureWarning; both places at once is an error unless
    ``replace`` (an override of the old key replaces the section's value)."""
    train = data.get("train")
    if not isinstance(train, Mapping):
        return data
    moved = [key for key in MOVED_TO_SEGMENTATION if key in train]
    if not moved:
        return data
    section = data.get("segmentation") or {}
    if not isinstance(section, Mapping):
        return data  # the section's own type error names it
    both = [key for key in moved if key in section]
    if both and not replace:
        raise ConfigError(
            f"{', '.join(f'train.{key}' for key in both)} and "
            f"{', '.join(f'segmentation.{key}' for key in both)} are both set; keep only "
            "the segmentation section's"
        )
    if warn:
        warnings.warn(
            f"{source}: {', '.join(f'train.{key}' for key in moved)} moved to the segmentation "
            f"section ({', '.join(f'segmentation.{key}' for key in moved)}); read from train "
            "for now",
            FutureWarning,
            stacklevel=3,
        )
    result = dict(data)
    result["train"] = {key: value for key, value in train.items() if key not in moved}
    result["segmentation"] = {**section, **{key: train[key] for key in moved}}
    return result


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain data (dicts, lists, numbers, strings) for ``config``."""
    return dataclasses.asdict(config)


def validate(config: Config) -> Config:
    """Check a configuration built in code the same way a YAML file is checked."""
    return config_from_dict(config_to_dict(config), source="config")


def _parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({error})") from None
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Set dotted keys in plain config data, ``['train.batch_size=8', 'stages.0.epochs=2']``.

    Keys that do not exist yet in a section are added (validation rejects unknown ones later);
    list items are addressed by index and must exist.
    """
    for text in overrides:
        path, value = _parse_override(text)
        node: Any = data
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            where = ".".join(path[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(
                        f"override {text!r}: {where} needs an index below {len(node)}, got {part!r}"
                    )
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise ConfigError(f"override {text!r}: {'.'.join(path[:depth])} is not a section")
    return data


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` laid over ``base``: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config, apply dotted overrides over the defaults and validate the result."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a configuration is a mapping of sections, got {data!r}")
    data = _merge(config_to_dict(Config()), _move_segmentation_keys(data, str(path)))
    data = _move_segmentation_keys(apply_overrides(data, overrides), "override", replace=True)
    return config_from_dict(data, source=str(path))


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved configuration as YAML (what the run actually used)."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
