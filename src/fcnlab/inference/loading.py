"""Find a trained model's recipe and weights: a checkpoint, a run's weights, or an export.

* an fcnlab checkpoint (``.pt``) carries its resolved config;
* ``.safetensors`` written by ``fcnlab export`` carries :class:`ModelMetadata` in its header;
* a run's ``final.safetensors`` (or a checkpoint moved out of its run) finds ``config.yaml`` in
  its run folder: beside it, or one folder up from ``checkpoints/``.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from fcnlab.config import Config, config_from_dict, load_config
from fcnlab.inference.metadata import METADATA_KEY, ModelMetadata, metadata_from_config
from fcnlab.models.from_config import build_model_from_config
from fcnlab.runtime.checkpoint import CheckpointError, load_checkpoint, load_model_weights


def safetensors_metadata(path: str | Path) -> ModelMetadata | None:
    """The fcnlab metadata in a ``.safetensors`` header, None when it has none."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            header = file.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(
            f"{str(path)!r} is not a readable .safetensors file ({error})"
        ) from None
    text = header.get(METADATA_KEY)
    return None if text is None else ModelMetadata.from_json(text, str(path))


def find_config(path: str | Path) -> Config:
    """The config of the run that wrote ``path``: inside a ``.pt`` checkpoint, else the run
    folder's ``config.yaml``."""
    path = Path(path)
    if path.suffix == ".pt":
        data = load_checkpoint(path)
        if "config" in data:
            return config_from_dict(
                data["config"], source=f"config inside {path}", warn_moved=False
            )
    for folder in (path.parent, path.parent.parent):
        if (folder / "config.yaml").is_file():
            return load_config(folder / "config.yaml")
    raise CheckpointError(
        f"cannot tell which model {str(path)!r} holds: it carries no config or fcnlab metadata "
        f"and there is no config.yaml beside it or in {str(path.parent.parent)!r}; pass the "
        "run's config (--config)"
    )


def read_metadata(path: str | Path, config: Config | str | Path | None = None) -> ModelMetadata:
    """The :class:`ModelMetadata` of weights at ``path`` (see the module docstring); an explicit
    ``config`` (a :class:`Config` or a YAML path) takes precedence."""
    if not Path(path).is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist")
    if config is not None:
        return metadata_from_config(config if isinstance(config, Config) else load_config(config))
    if Path(path).suffix == ".safetensors":
        embedded = safetensors_metadata(path)
        if embedded is not None:
            return embedded
    return metadata_from_config(find_config(path))


def load_trained(
    path: str | Path, config: Config | str | Path | None = None
) -> tuple[nn.Module, ModelMetadata]:
    """The model at ``path`` built from its recipe with its weights loaded, in eval mode, and
    its metadata."""
    metadata = read_metadata(path, config)
    model = build_model_from_config(metadata.model_config())
    load_model_weights(model, path)
    return model.eval(), metadata
