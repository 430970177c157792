from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
import yaml

from fcnlab.config import (
    Config,
    ConfigError,
    DataConfig,
    EvalConfig,
    ModelConfig,
    OutputConfig,
    SegmentationConfig,
    StageConfig,
    TrainConfig,
    TransformConfig,
    apply_overrides,
    config_to_dict,
    load_config,
    save_config,
    validate,
)

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_yaml_sections_override_defaults_and_keep_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, {"train": {"batch_size": 2, "lr_unused": None}})
    with pytest.raises(ConfigError, match=r"unknown key 'train.lr_unused'; allowed keys here: "):
        load_config(path)
    config = load_config(write(tmp_path, {"train": {"batch_size": 2, "amp": "bf16"}}))
    assert config.train.batch_size == 2 and config.train.amp == "bf16"
    assert config.train.optimizer == Config().train.optimizer


def test_bad_values_name_key_value_and_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train.amp = 'fp32' is not allowed; allowed: 'off'"):
        load_config(write(tmp_path, {"train": {"amp": "fp32"}}))
    with pytest.raises(ConfigError, match=r"train.batch_size = 'eight' is not int"):
        load_config(write(tmp_path, {"train": {"batch_size": "eight"}}))
    with pytest.raises(ConfigError, match=r"train.batch_size = 0 must be at least 1"):
        load_config(write(tmp_path, {"train": {"batch_size": 0}}))
    with pytest.raises(ConfigError, match=r"stages.0.encoder = 'melted'"):
        load_config(write(tmp_path, {"stages": [{"epochs": 1, "encoder": "melted"}]}))
    with pytest.raises(ConfigError, match=r"set exactly one of them"):
        load_config(write(tmp_path, {"stages": [{"epochs": 1, "iterations": 5}]}))
    with pytest.raises(ConfigError, match=r"unknown key 'colour'"):
        load_config(write(tmp_path, {"colour": "red"}))


def test_dotted_overrides_reach_sections_and_list_items(tmp_path: Path) -> None:
    path = write(tmp_path, {"stages": [{"name": "a", "epochs": 3}, {"name": "b", "epochs": 4}]})
    config = load_config(path, ["train.batch_size=8", "stages.0.epochs=2"])
    assert config.train.batch_size == 8
    assert [s.epochs for s in config.stages] == [2, 4]
    # PyYAML reads 1e-10 as a string; float fields accept it.
    assert load_config(path, ["stages.1.lr=1e-10"]).stages[1].lr == 1e-10
    with pytest.raises(ConfigError, match=r"stages.5 needs an index below 2"):
        load_config(path, ["stages.5.epochs=1"])
    with pytest.raises(ConfigError, match=r"must look like section.key=value"):
        load_config(path, ["train.batch_size"])
    with pytest.raises(ConfigError, match=r"unknown key 'train.bach_size'"):
        load_config(path, ["train.bach_size=3"])


def test_apply_overrides_parses_values_as_yaml() -> None:
    data = apply_overrides({"a": {"b": 1}}, ["a.b=[1, 2]", "a.c=true", "d.e=null"])
    assert data == {"a": {"b": [1, 2], "c": True}, "d": {"e": None}}


def test_saved_config_loads_back_equal(tmp_path: Path) -> None:
    config = Config(stages=[StageConfig(name="only", iterations=7, lr=0.5)])
    save_config(config, tmp_path / "resolved.yaml")
    assert config_to_dict(load_config(tmp_path / "resolved.yaml")) == config_to_dict(config)


def test_validate_checks_configs_built_in_code() -> None:
    config = Config()
    config.train.momentum = "high"  # type: ignore[assignment]
    with pytest.raises(ConfigError, match=r"train.momentum = 'high' is not float"):
        validate(config)


def test_unquoted_off_means_off_not_false(tmp_path: Path) -> None:
    path = tmp_path / "amp.yaml"
    path.write_text("train:\n  amp: off\n")
    assert load_config(path).train.amp == "off"
    assert load_config(path, ["train.amp=bf16"]).train.amp == "bf16"
    assert load_config(path, ["train.amp=off"]).train.amp == "off"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load(path: Path) -> None:
    # Their run folders are distinct from each other and from the demos' (test_train_cli).
    config = load_config(path)
    assert config.stages and config.output.name
    assert config.data.root is not None or config.data.name == "shapes"


def test_reference_fcn_learning_rates() -> None:
    lrs = {
        name: load_config(Path(CONFIGS[0]).parent / f"{name}.yaml").stages[0].lr
        for name in ("fcn32s_voc", "fcn16s_voc", "fcn8s_voc")
    }
    assert lrs == {"fcn32s_voc": 1e-10, "fcn16s_voc": 1e-12, "fcn8s_voc": 1e-14}


def test_segmentation_options_live_in_their_own_section(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {"segmentation": {"loss": "dice", "aux_weight": 0.2}}))
    assert config.segmentation.loss == "dice" and config.segmentation.aux_weight == 0.2
    assert config.segmentation.class_weights is None
    with pytest.raises(ConfigError, match=r"unknown key 'segmentation.gamma'"):
        load_config(write(tmp_path, {"segmentation": {"gamma": 2}}))


def test_old_configs_with_loss_keys_under_train_are_read_with_a_warning(tmp_path: Path) -> None:
    old = {"train": {"batch_size": 2, "loss": {"ce": 1.0, "dice": 0.5}, "class_weights": [1, 2]}}
    with pytest.warns(
        FutureWarning,
        match=r"train.loss, train.class_weights moved to the "
        r"segmentation section \(segmentation.loss, segmentation.class_weights\)",
    ):
        config = load_config(write(tmp_path, old))
    assert config.segmentation.loss == {"ce": 1.0, "dice": 0.5}
    assert config.segmentation.class_weights == [1.0, 2.0] and config.train.batch_size == 2
    assert "loss" not in config_to_dict(config)["train"]
    both = {"train": {"aux_weight": 0.1}, "segmentation": {"aux_weight": 0.2}}
    with pytest.raises(ConfigError, match=r"train.aux_weight and segmentation.aux_weight are both"):
        load_config(write(tmp_path, both))


def test_an_override_of_an_old_loss_key_still_sets_the_loss(tmp_path: Path) -> None:
    with pytest.warns(FutureWarning, match=r"override: train.loss moved"):
        config = load_config(write(tmp_path, {}), ["train.loss=dice"])
    assert config.segmentation.loss == "dice"
    assert (
        load_config(write(tmp_path, {}), ["segmentation.loss=focal"]).segmentation.loss == "focal"
    )


# (override, the error's end): one bad value per number of every section, written to a YAML
# file the way a user would, and the message that names its key, value and range.
BAD_NUMBERS = [
    ("model.num_classes=0", "model.num_classes = 0 must be at least 1"),
    ("data.num_workers=-1", "data.num_workers = -1 must be at least 0"),
    ("data.ignore_index=-1", "data.ignore_index = -1 must be in [0, 65535]"),
    ("data.transforms.crop_size=0", "data.transforms.crop_size = 0 must be at least 1"),
    ("data.transforms.scale_range=[0, 1]", "data.transforms.scale_range.0 = 0.0 must be > 0"),
    ("data.transforms.scale_range=[2, 1]", "data.transforms.scale_range = [2.0, 1.0] must be"),
    ("data.transforms.flip=1.5", "data.transforms.flip = 1.5 must be in [0, 1]"),
    ("data.transforms.jitter=-0.2", "data.transforms.jitter = -0.2 must be >= 0"),
    ("data.transforms.eval_size=0", "data.transforms.eval_size = 0 must be at least 1"),
    ("data.transforms.mean=[0.5, .nan, 0.5]", "data.transforms.mean.1 = nan must be a finite"),
    ("data.transforms.std=[0.2, 0, 0.2]", "data.transforms.std.1 = 0.0 must be > 0"),
    ("train.momentum=1", "train.momentum = 1.0 must be in [0, 1)"),
    ("train.betas=[0.9, 1.5]", "train.betas.1 = 1.5 must be in [0, 1)"),
    ("train.weight_decay=-1", "train.weight_decay = -1.0 must be >= 0"),
    ("train.warmup_steps=-5", "train.warmup_steps = -5 must be at least 0"),
    ("train.warmup_factor=2", "train.warmup_factor = 2.0 must be in [0, 1]"),
    ("train.poly_power=-0.9", "train.poly_power = -0.9 must be >= 0"),
    ("train.step_size=0", "train.step_size = 0 must be at least 1"),
    ("train.milestones=[0, 5]", "train.milestones.0 = 0 must be at least 1"),
    ("train.milestones=[8, 5]", "train.milestones = [8, 5] must be increasing steps >= 1"),
    ("train.gamma=0", "train.gamma = 0.0 must be > 0"),
    ("train.min_lr_factor=-0.1", "train.min_lr_factor = -0.1 must be in [0, 1]"),
    ("train.batch_size=0", "train.batch_size = 0 must be at least 1"),
    ("train.grad_accum=0", "train.grad_accum = 0 must be at least 1"),
    ("train.clip_grad_norm=-1", "train.clip_grad_norm = -1.0 must be > 0"),
    ("train.seed=-3", "train.seed = -3 must be at least 0"),
    ("train.log_every=0", "train.log_every = 0 must be at least 1"),
    ("train.checkpoint_every_steps=-1", "train.checkpoint_every_steps = -1 must be at least 0"),
    ("stages.1.lr=-0.1", "stages.1.lr = -0.1 must be > 0"),
    ("stages.0.lr=.inf", "stages.0.lr = inf must be a finite number"),
    ("stages.0.encoder_lr_mult=-1", "stages.0.encoder_lr_mult = -1.0 must be >= 0"),
    ("stages.0.epochs=0", "stages.0.epochs = 0 must be at least 1"),
    ("stages.1.iterations=-2", "stages.1.iterations = -2 must be at least 1"),
    ("segmentation.class_weights=[1, -2]", "segmentation.class_weights.1 = -2.0 must be >= 0"),
    ("segmentation.aux_weight=-0.5", "segmentation.aux_weight = -0.5 must be >= 0"),
    ("eval.every_epochs=-1", "eval.every_epochs = -1 must be at least 0"),
    ("eval.batch_size=0", "eval.batch_size = 0 must be at least 1"),
    ("eval.num_overlays=-1", "eval.num_overlays = -1 must be at least 0"),
]


@pytest.mark.parametrize(("override", "message"), BAD_NUMBERS, ids=[o for o, _ in BAD_NUMBERS])
def test_every_number_is_checked_at_load_naming_its_key(
    tmp_path: Path, override: str, message: str
) -> None:
    key, _, value = override.partition("=")
    section, *rest = key.split(".")
    data: dict = {"stages": [{"epochs": 1}, {"epochs": 1}]}
    node = data.setdefault(section, {})
    path = [int(part) if part.isdigit() else part for part in rest]
    for part in path[:-1]:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[path[-1]] = yaml.safe_load(value)
    config_path = write(tmp_path, data)
    with pytest.raises(ConfigError) as error:
        load_config(config_path)
    assert str(error.value).startswith(f"{config_path}: {message}")
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match=re.escape(message)):  # the same as an override
        load_config(write(tmp_path, {}), [override])


def test_every_number_field_declares_its_range_and_has_a_row_above() -> None:
    # A new number in any section must say what it allows and get a row in BAD_NUMBERS.
    sections = {ModelConfig: "model", DataConfig: "data", TransformConfig: "data.transforms",
                TrainConfig: "train", StageConfig: "stages.N", EvalConfig: "eval",
                OutputConfig: "output", SegmentationConfig: "segmentation"}  # fmt: skip
    found = numbers(list(sections))
    assert [spec.name for _, spec in found if "range" not in spec.metadata] == []
    keys = {f"{sections[section]}.{spec.name}" for section, spec in found}
    rows = {re.sub(r"^stages\.\d", "stages.N", o.partition("=")[0]) for o, _ in BAD_NUMBERS}
    assert rows == keys


def numbers(sections: list[type]) -> list[tuple[type, dataclasses.Field]]:
    """The fields of ``sections`` annotated with int or float (alone, in a list, or optional)."""
    found = []
    for section in sections:
        hints = typing.get_type_hints(section)
        for spec in dataclasses.fields(section):
            text = str(hints[spec.name])
            if re.search(r"\b(int|float)\b", text) and "bool" not in text:
                found.append((section, spec))
    return found


def test_boundary_values_are_accepted(tmp_path: Path) -> None:
    overrides = [
        "train.weight_decay=0", "train.momentum=0", "train.warmup_factor=1", "data.num_workers=0",
        "data.transforms.flip=1", "stages.0.encoder_lr_mult=0", "stages.0.lr=1e-14",
        "eval.every_epochs=0", "data.ignore_index=0", "train.min_lr_factor=1",
    ]  # fmt: skip
    config = load_config(write(tmp_path, {}), overrides)
    assert config.train.weight_decay == 0.0 and config.stages[0].lr == 1e-14


def test_a_section_built_in_code_checks_its_numbers_too() -> None:
    with pytest.raises(ConfigError, match=r"^lr = -1.0 must be > 0$"):
        StageConfig(iterations=1, lr=-1.0)
    config = Config()
    config.train.weight_decay = -1.0
    with pytest.raises(ConfigError, match=r"^config: train.weight_decay = -1.0 must be >= 0$"):
        validate(config)
