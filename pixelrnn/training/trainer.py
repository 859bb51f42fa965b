"""Training: the paper's recipe (section 5.2), resumable exactly, interrupted safely.

The files of a run are described in :mod:`pixelrnn.training.run_folder`, the state file in
:mod:`pixelrnn.training.state`, what a run prints in :mod:`pixelrnn.training.progress`.
Evaluation weights are the EMA (Polyak) average when ``train.ema_decay > 0``, else the raw
weights. Validation scores the first ``train.eval_images`` images of the validation split; a
signal stops it after the batch in hand, the run saves and stops, and a resumed run validates
that step first. The state is saved after the run's last validation, so ``best.safetensors``
only ever gets better, and a finished run, resumed, has nothing to do and changes no byte.

Exact resume: the batch of step ``s`` is a pure function of (seed, s) (one permutation per
epoch, :mod:`pixelrnn.training.batches`), the learning rate a pure function of s, and the
optimizer and RNG states are restored, so a run that is interrupted and resumed gives the same
losses as one that is not.

The images are held as given, never copied: a memory-mapped prepared cache is read a batch at a
time, by a thread that gathers the next batches while the model computes.
"""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoint import save_model
from ..config import ModelConfig
from ..errors import TrainingError
from ..evaluation import nats_by_batch, summarize
from ..models import PixelModel, model_from_config
from ..models.weights import check_config_limits
from ..utils import bits_per_dim, choose_device
from . import distributed
from .batches import BatchLoader, BatchOrder
from .progress import TrainingProgress
from .run_config import RunConfig
from .run_folder import RunFolder
from .state import TrainingState
from .tensorboard import TensorBoardLog


def make_optimizer(train, parameters) -> torch.optim.Optimizer:
    """``train.optimizer`` (section 5.2: RMSProp; or Adam) over all ``parameters`` at once (a loop over them took 5-10 % of a CPU step)."""
    if train.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=train.lr, weight_decay=train.weight_decay, fused=True)
    return torch.optim.RMSprop(parameters, lr=train.lr, weight_decay=train.weight_decay, foreach=True)


def learning_rate(train, step: int) -> float:
    """Learning rate at ``step`` (0-based) as a pure function of the step."""
    if train.schedule == "exponential":
        rate = train.lr * train.lr_decay**step
    elif train.schedule == "cosine":
        rate = 0.5 * train.lr * (1.0 + math.cos(math.pi * min(step, train.steps) / train.steps))
    else:
        rate = train.lr
    if train.warmup_steps and step < train.warmup_steps:
        rate *= (step + 1) / train.warmup_steps
    return rate


class NLLObjective(nn.Module):
    """The training objective of any model: its nats per image (B,).

    Wrapping ``model.nll`` as a module's ``forward`` lets DistributedDataParallel and
    ``torch.compile`` see the whole loss, for single networks and multi-scale models alike.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.nll(images) if labels is None else self.model.nll(images, labels)


@dataclass
class TrainResult:
    step: int
    stopped: str  # "finished", "budget", "signal:SIGINT", ...
    best_valid_nats: float | None
    run_dir: Path


class Trainer:
    """One training run in ``run_dir``; ``resume=True`` continues from its state file.

    ``train_labels`` and ``valid_labels`` (N,) are the classes of the images, where the dataset has them, and
    ``class_names`` their names: a class-conditional network (``model.classes``) trains and validates p(x | y).
    """

    def __init__(self, config: RunConfig, run_dir: str | os.PathLike, train_images: np.ndarray,
                 valid_images: np.ndarray | None, levels: int, *, dataset_name: str = "",
                 resume: bool = False, progress: bool = True, train_labels=None, valid_labels=None,
                 class_names: tuple[str, ...] = ()):
        self.config, self.train_cfg = config, config.train
        self.run_dir = Path(run_dir)
        self.folder = RunFolder(self.run_dir)
        self.progress = progress
        self.dataset_name = dataset_name
        if self.train_cfg.num_threads:
            torch.set_num_threads(self.train_cfg.num_threads)
        self.dist = distributed.setup(choose_device(self.train_cfg.device))
        self.device = self.dist.device
        if self.train_cfg.batch_size % self.dist.world_size:
            raise TrainingError(f"train.batch_size={self.train_cfg.batch_size} must be a multiple of the {self.dist.world_size} processes")
        # Held as given, never copied: a memory-mapped prepared cache is read a batch at a time.
        self.train_images = _array_like(train_images)
        self.valid_images = None if valid_images is None or len(valid_images) == 0 else _array_like(valid_images)
        _, channels, height, width = self.train_images.shape
        self.image_size = (height, width)
        self.dims = channels * height * width
        torch.manual_seed(self.train_cfg.seed)
        self.train_labels, self.valid_labels = _labels(train_labels, len(self.train_images), "training"), None
        if self.valid_images is not None:
            self.valid_labels = _labels(valid_labels, len(self.valid_images), "validation")
        classes = 0 if self.train_labels is None else len(class_names) or int(self.train_labels.max(initial=-1)) + 1
        self.model_config: ModelConfig = config.model_config(channels, levels, classes, tuple(class_names))
        check_config_limits(self.model_config, "the run configuration")  # its size, before anything is allocated
        self._check_labels(dataset_name)
        self.model = model_from_config(self.model_config).to(self.device)
        self.ema_model = None
        if self.train_cfg.ema_decay > 0:
            self.ema_model = model_from_config(self.model_config).to(self.device)
            self.ema_model.load_state_dict(self.model.state_dict())
            self.ema_model.requires_grad_(False)
        self.state = TrainingState(self.model, self.ema_model, make_optimizer(self.train_cfg, self.model.parameters()))
        self.optimizer = self.state.optimizer
        self.autocast_dtype = self._autocast_dtype()
        objective = NLLObjective(self.model)
        self.train_objective = torch.compile(objective) if self.train_cfg.compile else objective
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel

            self.train_objective = DistributedDataParallel(objective, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.order = BatchOrder(len(self.train_images), self.train_cfg.batch_size, self.train_cfg.seed)
        self.saved_step, self._saved = None, None
        self._stop_signal = None
        self.board: TensorBoardLog | None = None
        self._loader: BatchLoader | None = None
        if resume:
            self.state.load(self.folder.state, self.model_config, self.device)
            self.saved_step, self._saved = self.step, self._progress_mark()
            if self.dist.is_main:
                self.folder.truncate_metrics(self.step)
        elif self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.folder.write_config(config, self.model_config)
            self.folder.reset_metrics()
        distributed.barrier(self.dist)

    def _check_labels(self, dataset_name: str) -> None:
        """A class-conditional network needs a label in [0, classes) per image (one-line errors); an unconditional one ignores them."""
        classes = self.model_config.classes
        if not classes:
            self.train_labels = self.valid_labels = None
            return
        dataset = f"the dataset {dataset_name}" if dataset_name else "the dataset"
        if self.train_labels is None or (self.valid_images is not None and self.valid_labels is None):
            raise TrainingError(f"model.classes={classes} trains p(x | class), and {dataset} has no labels; labelled datasets: mnist, "
                                "cifar10, cifar10_subset, imagenet32/64, digits, folder: with one sub-folder per class, npz: with "
                                "<split>_labels (or set model.classes=0)")
        for labels in (self.train_labels, self.valid_labels):
            if labels is not None and len(labels) and int(labels.max()) >= classes:
                raise TrainingError(f"{dataset} has label {int(labels.max())}, outside [0, {classes}) of model.classes={classes}; "
                                    f"set model.classes to at least {int(labels.max()) + 1} (or \"auto\")")

    step = property(lambda self: self.state.step)
    best_valid = property(lambda self: self.state.best_valid)

    # ------------------------------------------------------------------ set-up
    def _autocast_dtype(self) -> torch.dtype | None:
        precision = self.train_cfg.precision
        if precision == "fp32" or self.device.type != "cuda":
            if precision == "bf16" and self.device.type != "cuda":
                raise TrainingError("train.precision='bf16' needs a CUDA device; use 'auto' or 'fp32' on the CPU")
            return None
        if not torch.cuda.is_bf16_supported():
            if precision == "bf16":
                raise TrainingError(f"train.precision='bf16' is not supported by {torch.cuda.get_device_name(self.device)}")
            return None
        return torch.bfloat16

    @property
    def eval_model(self) -> PixelModel:
        return self.ema_model if self.ema_model is not None else self.model

    # ------------------------------------------------------------------ state
    def _progress_mark(self) -> tuple:
        """What the state file records of the run's progress: saved again whenever any of it moved."""
        return self.step, self.state.validated_step, self.state.best_valid

    def save_state(self) -> None:
        self.saved_step, self._saved = self.step, self._progress_mark()
        if self.dist.is_main:
            self.state.save(self.folder.state, self.model_config)
            save_model(self.eval_model, self.folder.last, self.checkpoint_metadata())
        distributed.barrier(self.dist)

    def checkpoint_metadata(self) -> dict[str, str]:
        return {"step": str(self.step), "dataset": self.dataset_name, "image_size": f"{self.image_size[0]}x{self.image_size[1]}"}

    def log(self, record: dict) -> None:
        if not self.dist.is_main:
            return
        self.folder.append_metrics(record)

    # ------------------------------------------------------------------ loop
    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signal.Signals(signum).name

    def validate(self, progress: TrainingProgress) -> bool:
        """Score the validation images and log the record; False if a signal stopped it (nothing logged)."""
        if self.valid_images is None:
            return True
        limit = self.train_cfg.eval_images or len(self.valid_images)
        images, labels = self.valid_images[:limit], None if self.valid_labels is None else self.valid_labels[:limit]
        # Each process scores its share of the images; sums of nats and squares and stop votes are pooled.
        share, scored = images[self.dist.rank :: self.dist.world_size], []
        share_labels = None if labels is None else labels[self.dist.rank :: self.dist.world_size]
        with progress.validation(len(share)) as bar:
            if not self._stop_signal:
                for nats in nats_by_batch(self.eval_model, share, batch_size=self.train_cfg.eval_batch_size, device=self.device,
                                          labels=share_labels):
                    scored.append(nats)
                    bar.update(len(nats))
                    if self._stop_signal:
                        break
        nats = torch.cat(scored) if scored else torch.zeros(0, dtype=torch.float64)
        pooled = torch.tensor([len(nats), nats.sum(), (nats**2).sum(), float(bool(self._stop_signal))], dtype=torch.float64, device=self.device)
        count, total, squares, stop_votes = distributed.all_reduce_sum(pooled, self.dist).tolist()
        if stop_votes:
            return False
        summary = summarize(np.array([total / count]), self.dims)
        variance = max(squares / count - (total / count) ** 2, 0.0) * count / max(count - 1, 1)
        summary["nats_per_image_stderr"] = math.sqrt(variance / count)
        summary["images"] = int(count)
        record = {"step": self.step, "split": "valid", "nats": summary["nats_per_image"],
                  "bits_per_dim": summary["bits_per_dim"], "nats_stderr": summary["nats_per_image_stderr"],
                  "images": summary["images"]}
        self.log(record)
        self.state.validated_step = self.step
        if self.dist.is_main:
            progress.validated(record)
        if self.board is not None:
            self.board.scalars(self.step, {"valid/bits_per_dim": record["bits_per_dim"]})
            self.board.samples(self.step, self.eval_model, *self.image_size)
        if self.best_valid is None or summary["nats_per_image"] < self.best_valid:
            self.state.best_valid = summary["nats_per_image"]
            if self.dist.is_main:
                save_model(self.eval_model, self.folder.best, self.checkpoint_metadata())
        return True

    def validation_due(self, at_end: bool = False) -> bool:
        """Whether this step still owes its validation: one a signal interrupted, or the run's last."""
        if self.valid_images is None or self.step == 0:
            return False
        validated = self.state.validated_step
        if validated is None and self.step % self.train_cfg.eval_every == 0:
            validated = self.step  # a state written before the validated step was kept
        return validated != self.step and (at_end or self.step % self.train_cfg.eval_every == 0 or self.step >= self.train_cfg.steps)

    @property
    def finished(self) -> bool:
        """Every step trained and validated: training it again would change nothing."""
        return self.step >= self.train_cfg.steps and not self.validation_due()

    def _update_ema(self) -> None:
        decay = self.train_cfg.ema_decay
        with torch.no_grad():
            torch._foreach_lerp_(list(self.ema_model.parameters()), list(self.model.parameters()), 1.0 - decay)

    def train(self) -> TrainResult:
        cfg = self.train_cfg
        handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                handlers[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread: signals stay with the caller
                pass
        started = time.monotonic()
        stopped = "finished"
        progress = TrainingProgress(cfg.steps, self.step, self.dims, enabled=self.progress and self.dist.is_main, ema_decay=cfg.ema_decay)
        if cfg.tensorboard and self.dist.is_main and not self.finished:
            self.board = TensorBoardLog(self.run_dir / "tensorboard")
        window_images, window_start = 0, time.monotonic()
        self.model.train()
        try:
            if self.validation_due() and not self.validate(progress):
                stopped = self._signal_stop()
            while stopped == "finished" and self.step < cfg.steps:
                over_budget = bool(cfg.max_minutes) and time.monotonic() - started > 60 * cfg.max_minutes
                nats, stop_votes = self.train_step(stop_request=bool(self._stop_signal) or over_budget)
                if stop_votes:  # every process stops at the same step, before this batch is used
                    stopped = self._signal_stop() if self._stop_signal or not over_budget else "budget"
                    break
                window_images += cfg.batch_size
                speed = None
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    speed = window_images / max(time.monotonic() - window_start, 1e-9)
                    rate = learning_rate(cfg, self.step - 1)
                    self.log({"step": self.step, "split": "train", "nats": nats, "bits_per_dim": bits_per_dim(nats, self.dims),
                              "lr": rate, "images_per_second": speed})
                    if self.board is not None:
                        self.board.scalars(self.step, {"train/bits_per_dim": bits_per_dim(nats, self.dims), "learning_rate": rate,
                                                       "images_per_second": speed})
                    window_images, window_start = 0, time.monotonic()
                progress.step(self.step, nats, speed)
                if self.step % cfg.eval_every == 0 and not self.validate(progress):
                    stopped = self._signal_stop()
                    break
                if self.step % cfg.checkpoint_every == 0:
                    self.save_state()
            if stopped in ("finished", "budget") and self.validation_due(at_end=True) and not self.validate(progress):
                stopped = self._signal_stop()
        finally:
            self._close_loader()
            progress.close()
            if self.board is not None:
                self.board.close()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        if self._saved != self._progress_mark():  # a last validation after the last checkpoint is kept too
            self.save_state()
        if self.dist.is_main and self.best_valid is None and not self.folder.best.exists():
            save_model(self.eval_model, self.folder.best, self.checkpoint_metadata())
        distributed.barrier(self.dist)
        return TrainResult(self.step, stopped, self.best_valid, self.run_dir)

    def _signal_stop(self) -> str:
        """What stopped the run when a process voted to stop: the signal this process received, if any."""
        return f"signal:{self._stop_signal}" if self._stop_signal else "signal"

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This process's share of batch ``self.step`` and its labels, from a loader that runs a few steps ahead."""
        if self._loader is None or self._loader.next_step != self.step:  # first use, or a step not taken
            self._close_loader()
            self._loader = BatchLoader(self.train_images, self.order, self.step, rank=self.dist.rank,
                                       world_size=self.dist.world_size, device=self.device, labels=self.train_labels)
        return self._loader.labelled_batch(self.step)

    def _close_loader(self) -> None:
        if self._loader is not None:
            self._loader.close()
            self._loader = None

    def train_step(self, stop_request: bool = False) -> tuple[float, bool]:
        """One optimisation step on batch ``self.step``.

        Returns the batch's mean loss in nats per image (over the global batch) and whether any
        process asked to stop; then no update is made, on any process.
        """
        cfg = self.train_cfg
        batch, labels = self._batch()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(cfg, self.step)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            nats = self.train_objective(batch) if labels is None else self.train_objective(batch, labels)  # (B,) nats per image
        loss = nats.mean() / self.dims  # nats per dimension: a scale that does not depend on the image size
        # One collective per step: the global mean loss and the stop votes of all processes.
        pooled = distributed.all_reduce_sum(torch.stack([nats.detach().sum().double(), torch.tensor(float(stop_request), dtype=torch.float64, device=nats.device)]), self.dist)
        if pooled[1].item() > 0:
            return float("nan"), True
        mean_nats = pooled[0].item() / cfg.batch_size
        if not math.isfinite(mean_nats):
            where = f"the last good checkpoint is {self.folder.state} (step {self.saved_step})" if self.saved_step is not None else "no checkpoint was written yet"
            raise TrainingError(f"non-finite loss at step {self.step + 1}; training stopped, {where}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        if self.ema_model is not None:
            self._update_ema()
        self.state.step += 1
        return mean_nats, False


def _labels(labels, count: int, what: str) -> np.ndarray | None:
    """Labels (count,) as int64 in memory, or None."""
    if labels is None:
        return None
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (count,):
        raise TrainingError(f"{len(labels)} {what} labels for {count} {what} images; give one label per image")
    if labels.size and int(labels.min()) < 0:
        raise TrainingError(f"{what} label {int(labels.min())} is negative; classes are numbered from 0")
    return labels


def _array_like(images):
    """Images as a numpy array without a copy: a memory map stays one; a CPU tensor is viewed."""
    return images if isinstance(images, np.ndarray) else np.asarray(images)
