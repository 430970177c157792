"""What a resumed run checks before it continues: which checkpoint, and that the config still
means the same run.

A checkpoint's position (stage, step, data epoch, position in the epoch) only means something
under the config it was written with: another batch size, data set, schedule or stage list
would continue at a different place in the data or with a different optimisation. So a resume
refuses every changed key except those in :data:`MAY_CHANGE`, which change how the run is
watched or where it runs, not what it computes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fcnlab.config import Config, ConfigError, config_from_dict, config_to_dict
from fcnlab.runtime.checkpoint import CheckpointError, load_checkpoint

# Keys (or sections, ending in ".") that a resumed run may change.
MAY_CHANGE = (
    "output.",
    "train.log_every",
    "train.checkpoint_every_steps",
    "train.device",
    "train.compile",
    "train.channels_last",
    "train.cudnn_benchmark",
    "train.deterministic",
    "data.num_workers",
    "data.cache",
    "eval.batch_size",
    "eval.num_overlays",
)


def checkpoint_to_resume(run_dir: Path, resume: bool | str | Path) -> Path:
    """The checkpoint a run resumes from: ``resume`` when it is a path, else the run folder's
    ``checkpoints/last.pt``. When that does not exist, the error says what the folder holds and
    how to continue from ``best.pt`` if there is one."""
    if not isinstance(resume, bool):
        return Path(resume)
    last = run_dir / "checkpoints" / "last.pt"
    if last.is_file():
        return last
    best = run_dir / "checkpoints" / "best.pt"
    if best.is_file():
        step = load_checkpoint(best)["state"]["step"]
        raise CheckpointError(
            f"run folder '{run_dir}' has no checkpoints/last.pt to resume from, only best.pt "
            f"(step {step}); continue from it with --resume-from {best}"
        )
    raise CheckpointError(
        f"run folder '{run_dir}' has no checkpoint to resume from (checkpoints/last.pt does not "
        "exist); start the run without --resume"
    )


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train.batch_size": 8, "stages.0.lr": 0.01, ...}`` for nested config data: lists of
    mappings are numbered, other lists are values, an empty mapping has no keys."""
    if isinstance(data, Mapping):
        items = data.items()
    elif isinstance(data, list) and any(isinstance(item, Mapping) for item in data):
        items = enumerate(data)
    else:
        return {prefix[:-1]: data}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}{key}."))
    return flat


def changed_keys(saved: Mapping[str, Any], config: Config) -> list[str]:
    """``key: old -> new`` for every key outside :data:`MAY_CHANGE` on which the config saved in
    a checkpoint and ``config`` differ (keys one of them lacks show as ``(absent)``)."""
    old, new = flatten(dict(saved)), flatten(config_to_dict(config))
    changes = []
    for key in sorted(old.keys() | new.keys()):
        if key.startswith(MAY_CHANGE) or old.get(key, ...) == new.get(key, ...):
            continue
        before, after = (repr(d[key]) if key in d else "(absent)" for d in (old, new))
        changes.append(f"{key}: {before} -> {after}")
    return changes


def check_same_run(payload: Mapping[str, Any], config: Config, path: Path) -> None:
    """Refuse (:class:`CheckpointError`) to resume the checkpoint ``payload`` read from ``path``
    under a ``config`` that changes what the run computes, naming every changed key."""
    try:
        # Read as a config file would be: defaults added since, old keys moved, all checked.
        saved = config_to_dict(config_from_dict(payload["config"], str(path), warn_moved=False))
    except (ConfigError, KeyError) as error:
        raise CheckpointError(
            f"checkpoint '{path}' holds no config this fcnlab can compare with the run's "
            f"({error}); start a new run from its weights with model.init_from={path}"
        ) from None
    changes = changed_keys(saved, config)
    if changes:
        run_config = Path(config.output.root) / config.output.name / "config.yaml"
        raise CheckpointError(
            f"checkpoint '{path}' was written under another config, and resuming would change "
            f"the run's data position or optimisation ({'; '.join(changes)}); resume with the "
            f"run's own config (-c {run_config}) or start a new run from these weights with "
            f"model.init_from={path}"
        )
