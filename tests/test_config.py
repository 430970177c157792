from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fcnlab.config import (
    Config,
    ConfigError,
    StageConfig,
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
    config = load_config(path)
    assert config.stages and config.output.name == path.stem
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
