"""The training loop: stages -> epochs -> steps, read top to bottom in :meth:`Trainer.fit`.

Each stage freezes or unfreezes the encoder and starts a fresh optimiser and schedule. A step
is ``grad_accum`` micro-batches. At the end of each data epoch ``last.pt`` is written, then the
model is evaluated (every ``eval.every_epochs`` epochs); at the end of each stage ``last.pt`` is
written and the model evaluated (unless it just was), and ``last.pt`` is written again for the
next stage. Saving before evaluating means a failing evaluation loses no training; a run resumed
from such a checkpoint evaluates first. With ``train.checkpoint_every_steps`` ``last.pt`` is also
written every that many steps inside an epoch. The best model by the validation score (the
model's task says which: mIoU, COCO AP, ...; see :mod:`fcnlab.tasks`) is kept as ``best.pt`` and
the final weights as ``final.safetensors``.

The run folder is taken with :func:`fcnlab.runtime.run_dir.open_run_dir`: a folder that already
holds a run is refused unless the run is resumed or ``overwrite`` is set, and a lock file keeps
a second run out while this one runs.

Interruption: the first SIGINT or SIGTERM sets a flag that is checked after every step (in a
group of processes, at the next step that reads the losses: see
:mod:`fcnlab.engine.loss_reads`, so that every process stops after the same step); the run
then writes ``last.pt`` (reason ``"interrupted"``) and raises :class:`TrainingInterrupted` (the
command line exits with status 130). A second SIGINT stops at once. ``resume=True`` continues
from ``last.pt`` (a path: from that checkpoint) with the model, optimiser, schedule, scaler,
stage, step, data order and RNG states restored, so with ``train.deterministic`` an interrupted,
or killed, and resumed run ends with the same weights and metrics as an uninterrupted one:
``metrics.jsonl`` is cut back to the checkpoint's step. The config must mean the same run
(:func:`fcnlab.engine.resume.check_same_run`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from torch import nn
from torch.utils.data import Dataset

from fcnlab.config import Config, StageConfig, config_to_dict, save_config, validate
from fcnlab.engine.build import build_split, check_num_classes
from fcnlab.engine.loader import SeededSamples, eval_loader, train_loader
from fcnlab.engine.loss_reads import StepLoss, UnreadLosses
from fcnlab.engine.optim import build_optimizer, build_schedule
from fcnlab.engine.resume import check_same_run, checkpoint_to_resume
from fcnlab.engine.stages import apply_stage, describe_stage, stage_steps
from fcnlab.models.from_config import build_model_from_config
from fcnlab.runtime.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state_strictly,
    rng_state,
    save_checkpoint,
    save_safetensors,
    set_rng_state,
)
from fcnlab.runtime.console import print_literal, progress_wanted
from fcnlab.runtime.distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    init_distributed,
    wrap_model,
)
from fcnlab.runtime.precision import autocast
from fcnlab.runtime.run_dir import (
    RunFolderError,
    RunLock,
    RunLog,
    keep_metrics,
    open_run_dir,
    read_metrics,
)
from fcnlab.tasks import EvalSettings, Evaluation, class_names, run_evaluation, task_of
from fcnlab.viz.plots import plot_curves, save_figure


class TrainingInterrupted(RuntimeError):
    """The run stopped on a signal (or ``stop_after_steps``) after saving ``checkpoint``."""

    def __init__(self, message: str, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


@dataclass
class TrainState:
    """Where the run is; saved in every checkpoint. ``position`` counts this rank's
    micro-batches of data epoch ``data_epoch`` already used."""

    stage: int = 0
    stage_step: int = 0
    stage_epochs: int = 0
    step: int = 0
    data_epoch: int = 0
    position: int = 0
    best_score: float = -1.0
    last_eval_step: int = -1
    evaluations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StageResult:
    """One stage's outcome: its evaluations in order (the last one at the stage's end)."""

    index: int
    name: str
    steps: int
    evaluations: list[Any]

    @property
    def final(self) -> Any | None:
        """The evaluation at the end of the stage."""
        return self.evaluations[-1] if self.evaluations else None


@dataclass
class TrainResult:
    """What :func:`train` returns: the run folder, per-stage results and where weights went.

    ``best_score`` is the best validation score, named by ``metric`` (the task's: ``"mIoU"``,
    ``"AP"``, ...); -1 when no evaluation ran."""

    run_dir: Path
    step: int
    stages: list[StageResult]
    metric: str
    best_score: float
    best_checkpoint: Path | None
    last_checkpoint: Path
    final_weights: Path | None
    images_per_second: float


def _pick_device(name: str, info: DistInfo) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", info.local_rank)
    return device


def _seed_everything(seed: int, deterministic: bool, device: torch.device) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    # The CPU kernels a segmentation model uses are deterministic already; on CUDA some are not
    # (atomics in upsampling backward, cuDNN autotuning), so only there are they switched off.
    if deterministic and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def _set_cudnn_benchmark(wanted: bool, deterministic: bool) -> None:
    """cuDNN's autotuner on when ``wanted`` (and the run need not be deterministic), else off:
    set either way, so that a setting left by earlier code in the process does not leak in."""
    torch.backends.cudnn.benchmark = wanted and not deterministic


class Trainer:
    """Trains ``model`` by the stages of ``config``.

    ``model``, ``train_set``, ``val_set`` and ``loss`` are built from the config's registries
    when not given (tests and notebooks pass their own; the model needs a ``.encoder`` for
    frozen stages). The model's task (:func:`fcnlab.tasks.task_of`) supplies the collate
    function, the loss (a detector brings its own), the evaluator and the pictures.
    ``resume`` continues the run folder's ``last.pt`` (True) or the checkpoint at that path;
    ``overwrite`` replaces a run the folder already holds (see :mod:`fcnlab.runtime.run_dir`).
    The run folder is locked from here until :meth:`fit` returns or raises, or :meth:`close`.
    ``stop_after_steps`` simulates an interruption after that global step (for tests of
    resuming). ``console`` receives the log; ``progress`` forces the progress
    bars on or off (default: on for a terminal unless ``CI`` is set). ``read_every`` is the
    number of steps between reads of the loss from the device (:mod:`fcnlab.engine.loss_reads`;
    default: every step on the CPU, ``train.log_every`` on a GPU).
    """

    def __init__(
        self,
        config: Config,
        model: nn.Module | None = None,
        train_set: Dataset | None = None,
        val_set: Dataset | None = None,
        loss: nn.Module | None = None,
        console: Console | None = None,
        progress: bool | None = None,
        stop_after_steps: int | None = None,
        resume: bool | str | Path = False,
        overwrite: bool = False,
        read_every: int | None = None,
    ) -> None:
        self.config = config = validate(config)
        train = config.train
        self.device = _pick_device(train.device, DistInfo())
        self.dist = init_distributed(self.device.type)
        self.device = _pick_device(train.device, self.dist)
        _seed_everything(train.seed + self.dist.rank, train.deterministic, self.device)
        _set_cudnn_benchmark(train.cudnn_benchmark, train.deterministic)
        self.console = console or Console()
        if not self.dist.is_main:
            self.console = Console(quiet=True)
        self.show_progress = progress_wanted(self.console) if progress is None else progress
        self.show_progress &= self.dist.is_main
        self.stop_after_steps = stop_after_steps

        data = config.data
        self.model = model or build_model_from_config(config.model)
        self.task = task_of(self.model)
        self.task.validate_config(config)
        self.loss_fn = self.task.build_loss(config, self.model, loss)
        self.train_set = train_set or build_split(data, data.train_split, True, self.task.name)
        self.val_set = val_set or build_split(data, data.val_split, False, self.task.name)
        check_num_classes(self.train_set, config.model.num_classes, "training")
        check_num_classes(self.val_set, config.model.num_classes, "validation")
        self.evaluator = self.task.evaluator(
            config.model.num_classes, config, class_names(self.val_set, config.model.num_classes)
        )
        if train.sync_bn and self.dist.enabled:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.to(self.device)
        if train.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=train.amp == "fp16")

        pin = self.device.type == "cuda"
        self.samples = SeededSamples(self.train_set, train.seed)
        collate = self.task.collate(config.data.ignore_index)
        self.loader, self.sampler = train_loader(
            self.samples, self.dist, train.batch_size, train.seed, data.num_workers, pin, collate
        )
        self.val_loader = eval_loader(
            self.val_set, self.dist, config.eval.batch_size, data.num_workers, pin, collate
        )
        # A logged step, a save and the end of an epoch or stage read the losses too.
        default_read_every = 1 if self.device.type == "cpu" else train.log_every
        self.read_every = read_every or default_read_every
        self._unread = UnreadLosses()
        self.steps_per_epoch = len(self.loader) // train.grad_accum
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the training set has {len(self.samples)} images: too few for one step of "
                f"batch_size {train.batch_size} x grad_accum {train.grad_accum} x "
                f"{self.dist.world_size} process(es)"
            )
        self.batches_per_epoch = self.steps_per_epoch * train.grad_accum

        self.run_dir = config.run_dir
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.state = TrainState()
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self._pending: dict[str, Any] | None = None
        self._stop_signal: str | None = None
        self._images_per_second: list[float] = []
        self._last_result: Evaluation | None = None
        self._last_saved: tuple[Path, int] | None = None  # for the NaN message
        self.lock = self._take_run_dir(bool(resume), overwrite)
        try:
            if resume:
                self._resume(checkpoint_to_resume(self.run_dir, resume))
            purge = self.state.step + 1 if resume else None
            self.log = RunLog(self.run_dir, self.dist.is_main, config.output.tensorboard, purge)
            if self.dist.is_main:
                save_config(config, self.run_dir / "config.yaml")
        except BaseException:
            self.close()
            raise

    def _take_run_dir(self, resume: bool, overwrite: bool) -> RunLock | None:
        """Rank 0 locks and checks the run folder; every rank raises the same refusal."""
        lock, refusal = None, None
        if self.dist.is_main:
            try:
                lock = open_run_dir(self.run_dir, resume, overwrite, self._note)
            except RunFolderError as error:
                refusal = str(error)
        refusals = all_gather_objects(refusal, self.dist)
        if refusals[0] is not None:
            raise RunFolderError(refusals[0])
        return lock

    def _note(self, text: str) -> None:
        print_literal(self.console, text)

    def close(self) -> None:
        """Release the run folder and close the log (:meth:`fit` does this when it ends)."""
        if self.lock is not None:
            self.lock.release()
        log = getattr(self, "log", None)
        if log is not None:
            log.close()

    # ----------------------------------------------------------------------------- the loop
    def fit(self) -> TrainResult:
        """Run every remaining stage; returns the per-stage results. The run folder is released
        however this ends."""
        try:
            return self._fit()
        finally:
            self.close()

    def _fit(self) -> TrainResult:
        stages = self.config.stages
        with self._signal_handlers(), self._progress() as progress:
            for index in range(self.state.stage, len(stages)):
                stage = stages[index]
                total = stage_steps(stage, self.steps_per_epoch)
                self._start_stage(index, stage, total)
                task = progress.add_task(
                    f"stage {index + 1}/{len(stages)} {stage.name}",
                    total=total,
                    completed=self.state.stage_step,
                    epoch=self.state.data_epoch,
                    loss=math.nan,
                    lr=0.0,
                    ips=0.0,
                )
                while True:
                    if self.state.position >= self.batches_per_epoch:
                        self._end_epoch()
                    if self._epoch_evaluation_due():
                        self._evaluate(index)
                    if self.state.stage_step >= total:
                        break
                    self._train_steps(index, total, progress, task)
                if self.state.last_eval_step != self.state.step:
                    if self._last_saved != (self.checkpoint_dir / "last.pt", self.state.step):
                        self._save("stage-end")
                    self._evaluate(index)
                self._end_stage(index)
        return self._finish()

    def _start_stage(self, index: int, stage: StageConfig, total: int) -> None:
        """Freeze/unfreeze, wrap for DDP, fresh optimiser and schedule (or the resumed ones)."""
        apply_stage(self.model, stage)
        self.net = wrap_model(self.model, self.dist, self.device)
        if self.config.train.compile:
            self.net = torch.compile(self.net)
        self.optimizer = build_optimizer(self.model, stage, self.config.train)
        self.scheduler = build_schedule(self.optimizer, total, self.config.train)
        if self._pending is not None:
            self.optimizer.load_state_dict(self._pending["optimizer"])
            self.scheduler.load_state_dict(self._pending["scheduler"])
            self.scaler.load_state_dict(self._pending["scaler"])
            self._pending = None
        if self.state.stage_step == 0:
            # Where the stage starts, for the curves (its first logged step may come later).
            record = {"kind": "stage", "stage": index, "name": stage.name}
            self.log.write({**record, "epoch": self.state.data_epoch, "step": self.state.step + 1})
        self.console.print(
            f"[bold]{escape(describe_stage(index, len(self.config.stages), stage, total))}[/bold]"
        )

    def _train_steps(self, index: int, total: int, progress: Progress, task: Any) -> None:
        """Steps from the current position until the data epoch or the stage ends."""
        train, state = self.config.train, self.state
        self.samples.epoch = state.data_epoch
        self.sampler.set_position(state.data_epoch, state.position * train.batch_size)
        batches = iter(self.loader)
        self.net.train()
        window_start, window_images = time.perf_counter(), 0
        while state.position < self.batches_per_epoch and state.stage_step < total:
            micro_batches = [next(batches) for _ in range(train.grad_accum)]
            losses = self._step(micro_batches, index, total)
            state.step += 1
            state.stage_step += 1
            state.position += train.grad_accum
            window_images += train.batch_size * train.grad_accum * self.dist.world_size
            if losses:
                progress.update(task, loss=losses[-1].loss)
            if state.step % train.log_every == 0 or state.stage_step == total:
                ips = window_images / max(time.perf_counter() - window_start, 1e-9)
                self._log_step(index, losses[-1].loss, ips)
                progress.update(task, epoch=state.data_epoch, ips=ips)
                window_start, window_images = time.perf_counter(), 0
            progress.update(task, advance=1, lr=self._lr())
            if any(loss.stop for loss in losses):
                self._interrupt(index)
            every = train.checkpoint_every_steps
            # The end of an epoch or stage saves anyway.
            inside = state.position < self.batches_per_epoch and state.stage_step < total
            if every and state.step % every == 0 and inside:
                self._save("steps")

    def _read_due(self, total: int) -> bool:
        """Whether the coming step reads the losses from the device: every ``read_every`` steps,
        and at every step that logs, saves, may stop or ends an epoch or the stage, so that
        nothing is written before its losses are checked."""
        train, state = self.config.train, self.state
        step = state.step + 1
        every = train.checkpoint_every_steps
        stop_after = self.stop_after_steps
        return (
            step % self.read_every == 0
            or step % train.log_every == 0
            or state.stage_step + 1 == total
            or state.position + train.grad_accum >= self.batches_per_epoch
            or bool(every and step % every == 0)
            or (stop_after is not None and step >= stop_after)
            # Alone, a process acts on its own signal at once; in a group every process reads at
            # the same steps, so that all of them stop after the same one.
            or (self._stop_signal is not None and not self.dist.enabled)
        )

    def _step(self, micro_batches: list[Any], index: int, total_steps: int) -> list[StepLoss]:
        """One optimiser step over ``grad_accum`` micro-batches of a stage of ``total_steps``.
        Its mean loss and stop flag stay on the device; when a read is due (:meth:`_read_due`)
        every unread step's are read, before this step's update so that a NaN found then is
        never applied, and returned."""
        train = self.config.train
        assert self.optimizer is not None and self.scheduler is not None
        total = torch.zeros((), device=self.device)
        for i, (images, targets) in enumerate(micro_batches):
            images = images.to(self.device, non_blocking=True)
            if train.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            last = i == len(micro_batches) - 1
            no_sync = self.net.no_sync if self.dist.enabled and not last else None
            with no_sync() if no_sync else contextlib.nullcontext():
                with autocast(self.device, train.amp):
                    outputs = self.net(images)
                    loss = self.loss_fn(outputs, self.task.targets_to(targets, self.device))
                if i == 0:
                    # Dropped here, the last step's gradients leave memory that backward reuses
                    # at once; dropped at the end of the step, glibc returns it to the OS and
                    # the next step page-faults it back (FCN-8s on CPU: 2x the faults, ~10 %).
                    self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss / train.grad_accum).backward()
            total += loss.detach().float()
        stop = self._stop_signal is not None or (
            self.stop_after_steps is not None and self.state.step + 1 >= self.stop_after_steps
        )
        # One reduction per step carries the loss and the stop flag to every process; the flag
        # is filled on the device, as a copy from the host would wait for the queued work.
        flags = torch.stack([total / train.grad_accum, torch.full_like(total, float(stop))])
        flags = all_reduce_sum(flags, self.dist) / self.dist.world_size
        self._unread.add(self.state.step + 1, index, flags)
        losses = self._read_losses() if self._read_due(total_steps) else []
        if train.clip_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            params = [p for p in self.model.parameters() if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, train.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return losses

    def _read_losses(self) -> list[StepLoss]:
        """The unread steps' losses; a NaN or infinite one stops the run, naming its step."""
        losses = self._unread.read()
        for loss in losses:
            if not math.isfinite(loss.loss):
                raise self._non_finite(loss)
        return losses

    def _non_finite(self, loss: StepLoss) -> NonFiniteLossError:
        if self._last_saved is None:
            kept = "this run has written no checkpoint yet"
        else:
            path, step = self._last_saved
            kept = f"the last good checkpoint is {path} (step {step})"
        stage = self.config.stages[loss.stage].name
        return NonFiniteLossError(
            f"the loss is {loss.loss} at step {loss.step} of stage {loss.stage + 1} "
            f"({stage!r}); stopped without saving: {kept}"
        )

    def _end_epoch(self) -> None:
        """Count the epoch and write ``last.pt`` (before the evaluation: see the module)."""
        state = self.state
        state.stage_epochs += 1
        state.data_epoch += 1
        state.position = 0
        self._save("epoch")

    def _epoch_evaluation_due(self) -> bool:
        """Whether an epoch of this stage just ended whose evaluation is due and not done yet (also
        right after resuming from the checkpoint written before that evaluation)."""
        state, every = self.state, self.config.eval.every_epochs
        ended = every > 0 and state.position == 0 and state.stage_epochs > 0
        return ended and state.stage_epochs % every == 0 and state.last_eval_step != state.step

    def _end_stage(self, index: int) -> None:
        """Move the state to the start of the next stage (a fresh data epoch) and save."""
        state = self.state
        state.stage, state.stage_step, state.stage_epochs = index + 1, 0, 0
        if state.position:
            state.data_epoch, state.position = state.data_epoch + 1, 0
        self._save("stage")

    def _interrupt(self, index: int) -> None:
        path = self._save("interrupted")
        reason = self._stop_signal or f"stop_after_steps={self.stop_after_steps}"
        raise TrainingInterrupted(
            f"interrupted ({reason}) after step {self.state.step} in stage {index + 1}; "
            f"checkpoint saved to {path}; continue with --resume",
            path,
        )

    # ------------------------------------------------------------------------- evaluation
    def _evaluate(self, index: int) -> Evaluation:
        settings = EvalSettings(self.config.train.amp, self.config.train.channels_last)
        infer = self.task.inference(self.model, settings)
        result = run_evaluation(self.model, self.val_loader, self.evaluator, infer)
        result.stage, result.epoch, result.step = index, self.state.data_epoch, self.state.step
        self.state.last_eval_step = self.state.step
        self._last_result = result
        self.state.evaluations.append(result.record())
        self.log.write(result.record())
        title = f"evaluation at step {result.step} (stage {index + 1}, epoch {result.epoch})"
        self.console.print(self.task.epoch_table(result, title))
        # NaN (nothing scored) never beats the best so far.
        if result.score > self.state.best_score:
            self.state.best_score = result.score
            self._save("best", self.checkpoint_dir / "best.pt")
        return result

    # ------------------------------------------------------------------ checkpoints, resume
    def _save(self, reason: str, path: Path | None = None) -> Path:
        """Write a full checkpoint (every process takes part, rank 0 writes)."""
        last = path is None
        path = path or self.checkpoint_dir / "last.pt"
        rng = all_gather_objects(rng_state(), self.dist)
        if self.dist.is_main:
            assert self.optimizer is not None and self.scheduler is not None
            save_checkpoint(
                path,
                {
                    "reason": reason,
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    "state": dataclasses.asdict(self.state),
                    "rng": rng,
                    "config": config_to_dict(self.config),
                },
            )
        barrier(self.dist)
        if last:
            self._last_saved = (path, self.state.step)
        return path

    def _resume(self, path: Path) -> None:
        """Continue from the checkpoint ``path``: the same config (but for harmless keys), the
        model, the state and the RNG; ``metrics.jsonl`` keeps only what came before it."""
        payload = load_checkpoint(path, map_location=self.device)
        check_same_run(payload, self.config, path)
        load_state_strictly(self.model, payload["model"], f"checkpoint '{path}'", "the checkpoint")
        try:
            self.state = TrainState(**payload["state"])
        except (KeyError, TypeError) as error:
            raise CheckpointError(
                f"checkpoint '{path}' holds no training state this fcnlab can continue "
                f"({type(error).__name__}: {error}); start a new run from its weights with "
                f"model.init_from={path}"
            ) from None
        self._last_saved = (path, self.state.step)
        if self.dist.is_main:
            keep_metrics(self.run_dir, self._written_before)
        if self.state.stage_step > 0:
            self._pending = payload
        rng = payload["rng"]
        set_rng_state(rng[self.dist.rank] if len(rng) == self.dist.world_size else rng[0])
        print_literal(
            self.console,
            f"resumed from {path} at step {self.state.step} (stage {self.state.stage + 1}, "
            f"data epoch {self.state.data_epoch}, position {self.state.position})",
        )

    def _written_before(self, record: dict[str, Any]) -> bool:
        """Whether a ``metrics.jsonl`` record came before the resumed checkpoint (its step's
        evaluation only if the checkpoint was written after it): what follows is written again."""
        step, state = record.get("step", 0), self.state
        if record.get("kind") == "eval":
            return step < state.step or step == state.last_eval_step == state.step
        return step <= state.step

    # ---------------------------------------------------------------------------- helpers
    def _lr(self) -> float:
        assert self.optimizer is not None
        return max(group["lr"] for group in self.optimizer.param_groups)

    def _log_step(self, index: int, loss: float, images_per_second: float) -> None:
        state = self.state
        self._images_per_second.append(images_per_second)
        self.log.write(
            {
                "kind": "train",
                "stage": index,
                "epoch": state.data_epoch,
                "step": state.step,
                "loss": loss,
                "lr": self._lr(),
                "images_per_s": images_per_second,
            }
        )
        if not self.show_progress:
            self.console.print(
                f"stage {index + 1} epoch {state.data_epoch} step {state.step}: loss {loss:.4f} "
                f"lr {self._lr():.3g} {images_per_second:.1f} img/s",
                highlight=False,
            )

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"),
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}"),
            TextColumn("{task.fields[ips]:.1f} img/s"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.show_progress,
        )

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(number: int, frame: Any) -> None:
            name = signal.Signals(number).name
            if self._stop_signal is not None and number == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_signal = name
            self.console.print(f"[yellow]{name}: stopping after this step[/yellow]")

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _finish(self) -> TrainResult:
        """Final weights, pictures and the result object."""
        final = None
        if self.dist.is_main:
            final = save_safetensors(self.model, self.run_dir / "final.safetensors")
            if self.config.output.plots:
                self._write_pictures()
        barrier(self.dist)
        results = [self.task.result_from_record(r) for r in self.state.evaluations]
        stages = [
            StageResult(
                index=i,
                name=stage.name,
                steps=stage_steps(stage, self.steps_per_epoch),
                evaluations=[r for r in results if r.stage == i],
            )
            for i, stage in enumerate(self.config.stages)
        ]
        best = self.checkpoint_dir / "best.pt"
        rates = self._images_per_second
        return TrainResult(
            run_dir=self.run_dir,
            step=self.state.step,
            stages=stages,
            metric=self.task.metric,
            best_score=self.state.best_score,
            best_checkpoint=best if best.exists() else None,
            last_checkpoint=self.checkpoint_dir / "last.pt",
            final_weights=final,
            images_per_second=sum(rates) / len(rates) if rates else 0.0,
        )

    def _write_pictures(self) -> None:
        curves = plot_curves(read_metrics(self.run_dir), self.task.curve_metrics)
        save_figure(curves, self.run_dir / "curves.png")
        evaluations = self.state.evaluations
        last = self._last_result  # in memory, with what a record leaves out (PR curves)
        if evaluations and (last is None or last.step != evaluations[-1]["step"]):
            last = self.task.result_from_record(evaluations[-1])
        self.task.write_pictures(self.model, self.val_set, last, self.run_dir, self.config)


def train(
    config: Config, resume: bool | str | Path = False, overwrite: bool = False, **kwargs: Any
) -> TrainResult:
    """Train by ``config`` (``kwargs`` go to :class:`Trainer`); ``resume`` continues the run
    folder's ``last.pt`` (True) or a checkpoint (a path); ``overwrite`` replaces a run the folder
    already holds."""
    return Trainer(config, resume=resume, overwrite=overwrite, **kwargs).fit()
