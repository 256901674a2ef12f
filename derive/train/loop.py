"""`run_training(config)`: train a model on CIFAR or ImageNet, one epoch at a time, safely resumable.

Per epoch: shuffle and augment from a generator seeded by (seed, epoch), train, evaluate on the test
set, then write checkpoint.pt, metrics.csv and summary.json (each atomically, in that order). A
non-finite training loss stops the run with TrainingDiverged (exit status 3 from the CLI) before
anything of that epoch is written, so the checkpoint on disk is the last good one.

Within an epoch, checkpoint.pt is also written every --checkpoint-every (minutes or steps) and after
the step under way when SIGINT/SIGTERM arrives (derive.train.midepoch, derive.train.interrupts);
`--resume` then continues that epoch from the step after it, exactly.

Under torchrun the same loop runs on every rank (derive.train.distributed): each rank trains on its
part of every global step (derive.train.sharding), DDP averages the gradients, metrics are summed
across ranks, and only rank 0 writes RUN_DIR.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from derive.allocator import configure_for as configure_allocator
from derive.devices import device_name
from derive.errors import UserError
from derive.memcheck import check_fits, training_bytes
from derive.models import resolve_model
from derive.models.stats import count_flops, count_parameters
from derive.models.variants import paper_init, torch_default_init, use_projection_shortcuts
from derive.rundir import RunDirectory, TrainingDiverged, recording_stop
from derive.timefmt import time_left
from derive.train import distributed
from derive.train.augment import derive_seed
from derive.train.checkpoint import (
    check_compatible,
    check_optimizer_fits,
    load_checkpoint,
    save_checkpoint,
)
from derive.train.config import TrainConfig, recipe_defaults
from derive.train.distributed import Dist
from derive.train.interrupts import deferred_interrupts
from derive.train.midepoch import EpochSums, Flags, MidEpoch, rank_entry
from derive.train.progress import Progress
from derive.train.provenance import git_commit, rng_state, set_rng_state, software, utc_now
from derive.train.regularize import (
    auxiliary_parameters,
    check_model,
    clip_gradients,
    model_options,
    set_drop_path,
    training_loss,
)
from derive.train.runfiles import CHECKPOINT, run_directory, write_metrics, write_summary
from derive.train.schedule import describe as describe_schedule
from derive.train.schedule import make_scheduler, retarget
from derive.train.sharding import Share, epoch_shares
from derive.train.sources import dataset_shape, open_data
from derive.train.steplog import StepLog, grad_norm, write_steps
from derive.train.traindata import Batch, EvalSource, TrainData, TrainSource
from derive.train.warmup import Warmup

log = logging.getLogger(__name__)

FLOPS_NOTE = (
    "flops: FLOPs of one forward pass on one 3x{size}x{size} image, counted by torch.utils.flop_counter "
    "(a multiply-add counts 2); multiply_adds = flops / 2 is the unit of the papers' tables"
)
SINGLE = Dist()  # one process, no process group


PARAMETERS_NOTE = (
    "parameters: every parameter of the model as trained, its auxiliary head included when it has "
    "one; parameters_without_auxiliary leaves out those named '*auxiliary*', as DARTS and SCIS "
    "Table 4 count (their 3.3M); flops are of the eval-mode forward, without the auxiliary head"
)


@dataclass
class Runtime:
    """How the computation runs (resolved from the config's 'auto' choices)."""

    device: torch.device
    bf16: bool
    memory_format: torch.memory_format
    sync_every: int  # batches between host syncs (loss check, progress)

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)


def resolve_runtime(config: TrainConfig) -> Runtime:
    """Pick the device, precision and memory format; set the CUDA flags. UserError if CUDA is asked but absent."""
    want = config.device
    if want == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "--device cuda was asked for but no CUDA device is available (use --device cpu or auto)"
        )
    device = torch.device(
        "cuda" if want == "cuda" or (want == "auto" and torch.cuda.is_available()) else "cpu"
    )
    cuda = device.type == "cuda"
    if cuda:
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = not config.deterministic
        torch.backends.cudnn.deterministic = config.deterministic
    if config.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    bf16 = config.precision == "bf16" or (config.precision == "auto" and cuda)
    channels_last = config.memory_format == "channels_last" or (
        config.memory_format == "auto" and cuda
    )
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return Runtime(device=device, bf16=bf16, memory_format=fmt, sync_every=32 if cuda else 1)


def model_identity(spec: str) -> str:
    """'zoo:NAME' for a zoo model, 'file:NAME.py@sha256:...' for a model file (content, not path)."""
    if spec.endswith(".py") and os.path.isfile(spec):
        digest = hashlib.sha256(Path(spec).read_bytes()).hexdigest()[:16]
        return f"file:{os.path.basename(spec)}@sha256:{digest}"
    return f"zoo:{spec}"


def build_model(
    config: TrainConfig, num_classes: int | None = None, input_size: int = 32
) -> nn.Module:
    """The model, initialized from the run's seed (paper init unless turned off), checked on a dummy
    batch of input_size x input_size images (default: CIFAR's classes and 32 x 32)."""

    num_classes = config.num_classes if num_classes is None else num_classes
    torch.manual_seed(derive_seed(config.seed, "init"))
    shape = f"2x3x{input_size}x{input_size}"
    try:
        model = resolve_model(
            config.model, num_classes=num_classes, memory=config.memory, **model_options(config)
        )
    except UserError:
        raise
    except (Exception, SystemExit) as exc:
        if not config.model.endswith(".py"):  # a zoo model failing is a bug in derive
            raise
        # a user's model file failing is bad input
        raise UserError(
            f"{config.model}: create_model(num_classes={num_classes}) failed: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(model, nn.Module):
        raise UserError(
            f"{config.model}: create_model returned {type(model).__name__}, not a torch.nn.Module"
        )
    if config.shortcut == "projection":
        use_projection_shortcuts(model)
    if config.paper_init:
        paper_init(model)
    if config.conv_init == "torch" or config.classifier_init == "torch":
        torch_default_init(
            model, convs=config.conv_init == "torch", linears=config.classifier_init == "torch"
        )
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, 3, input_size, input_size))
    except (Exception, SystemExit) as exc:  # the user's model is bad input
        raise UserError(
            f"model {config.model} fails on a {shape} batch: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(
            f"model {config.model} maps a {shape} batch to {got}, expected (2, {num_classes}) logits"
        )
    check_model(model, config)  # auxiliary head / drop_path_prob when the options need them
    if not any(p.requires_grad for p in model.parameters()):
        raise UserError(f"model {config.model} has no trainable parameters: nothing to train")
    return model


def run_training(config: TrainConfig, progress: Progress | None = None) -> dict[str, object]:
    """Train as `config` says, writing the run directory; return the summary (also in summary.json).

    Raises UserError for bad input (before anything is written), TrainingDiverged on a NaN/inf loss,
    and, in a distributed run, RankLost when another rank is gone.
    """
    launch = distributed.launch_from_env()
    rt = resolve_runtime(config)
    log.debug("host memory allocator: %s", configure_allocator(config.memory))
    distributed.check_launch(launch, config.batch_size, config.sync_bn, rt.device.type)
    d = distributed.start(launch, rt.device, config.dist_timeout)
    rt.device = d.device
    folder = run_directory(Path(config.out).expanduser())
    created = folder.missing_folders() if d.is_main else []
    try:
        result = _run_training(config, progress, rt, d)
    except BaseException as exc:
        if isinstance(exc, UserError):  # bad input leaves no half-made run folder behind
            folder.remove_if_new(created)
        lost = distributed.rank_lost(exc, d, config.out)
        if lost is not None:
            raise lost from None
        raise
    d.close()
    return result


def _run_training(
    config: TrainConfig, progress: Progress | None, rt: Runtime, d: Dist
) -> dict[str, object]:
    """Check the run folder, build, restore, train the epochs left, finish."""
    folder = run_directory(Path(config.out).expanduser())
    d.on_main(folder.check, config.resume, config.force)
    started = utc_now()
    with d.agreement():  # bad input on any rank stops every rank with its one line
        built = _build(config, rt, d)
    # only rank 0 reads RUN_DIR; the others get a copy
    state = d.on_main(_load_state, folder.path, config, built, share=True)
    d.on_main(_open_run_dir, folder, config.force)
    run = _Run.create(config, built, rt, d, folder, started)
    if state is not None:
        run.restore(state)
    run.write_tables()
    run.ready(progress)
    if len(run.history) >= config.epochs:
        log.info("%s already holds all %d epochs; nothing to do", folder.path, config.epochs)
        return run.write_summary("completed")
    run.begin_session()
    return run.train()


@dataclass
class _Built:
    """The model and data of a run, checked before anything is written."""

    model: nn.Module
    data: TrainData
    model_id: str
    input_size: int


def _build(config: TrainConfig, rt: Runtime, d: Dist) -> _Built:
    """The model (first: a bad MODEL fails at once), then the data; UserError if they cannot fit."""
    num_classes, input_size = dataset_shape(config)
    model = build_model(config, num_classes, input_size)
    model_id = model_identity(config.model)
    data = open_data(config, rt.device, rt.memory_format, d)
    _check_memory(model, config, data, rt, d)
    return _Built(model, data, model_id, input_size)


def _load_state(run_dir: Path, config: TrainConfig, built: _Built) -> dict[str, object] | None:
    """The checkpoint to resume from (None: a new run), checked to fit the model, data and recipe."""
    ckpt_path = run_dir / CHECKPOINT
    if config.resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        check_compatible(
            ckpt_path,
            state,
            config.recipe(),
            built.model_id,
            built.data.fingerprint,
            defaults=recipe_defaults(),
        )
        return state
    if config.resume:
        log.info("no checkpoint in %s: starting a new run", run_dir)
    return None


def _open_run_dir(folder: RunDirectory, force: bool) -> None:
    """Create the run folder; remove what a killed run left and, with --force, the old run."""
    for stale in folder.open(force):
        log.info("removed %s (left by a run killed while writing)", stale)


@dataclass
class _Run:
    """A training run under way: what it trains, its history, and the run folder it keeps."""

    config: TrainConfig
    rt: Runtime
    d: Dist
    folder: RunDirectory
    data: TrainData
    model: nn.Module  # this process's model, unwrapped: what a checkpoint holds
    ddp: nn.Module  # what trains (DDP around `model` when distributed)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ctx: _RunContext
    warmup: Warmup
    steplog: StepLog = field(default_factory=StepLog)
    history: list[dict[str, float]] = field(default_factory=list)
    position: dict[str, object] | None = None  # where within an epoch the checkpoint was written
    mid: MidEpoch = field(default_factory=MidEpoch)
    lr: float = 0.0  # the current epoch's learning rate
    net: nn.Module = field(init=False)  # what trains, compiled if asked (set by ready())
    eval_net: nn.Module = field(init=False)  # what evaluates
    progress: Progress = field(init=False)

    @classmethod
    def create(
        cls,
        config: TrainConfig,
        built: _Built,
        rt: Runtime,
        d: Dist,
        folder: RunDirectory,
        started: str,
    ) -> _Run:
        """Count the model, move it to the device, wrap it for DDP, make the optimizer."""
        model, data = built.model, built.data
        n_params, n_aux = _count_parameters(model), auxiliary_parameters(model)
        flops = _count_flops(model, built.input_size)
        model.to(rt.device, memory_format=rt.memory_format)
        model, ddp = d.wrap(
            model,
            config.sync_bn,
            built.input_size,
            lambda out: training_loss(out, _probe_labels(out), config.auxiliary_weight)[1],
        )
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
        scheduler = make_scheduler(optimizer, config)
        warmup = Warmup(config.warmup_steps, config.warmup_factor, config.warmup_until_error)
        ctx = _RunContext(
            config=config,
            data=data,
            data_id=data.fingerprint,
            model_id=built.model_id,
            parameters=n_params,
            auxiliary_parameters=n_aux,
            flops=flops,
            device_name=device_name(rt.device),
            rt=rt,
            dist=d,
            started=started,
            sessions=[],
            git_commit=None,
            git_dirty=None,
        )
        return cls(config, rt, d, folder, data, model, ddp, optimizer, scheduler, ctx, warmup)

    @property
    def checkpoint_path(self) -> Path:
        return self.folder.path / CHECKPOINT

    def restore(self, state: dict[str, object]) -> None:
        """Continue from a checkpoint: states, RNG, history, and where within an epoch it stopped."""
        config, path = self.config, self.checkpoint_path
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            check_optimizer_fits(path, self.optimizer)
            self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"{path} does not fit {config.model} as built now: {first}") from None
        set_rng_state(state["rng"])
        self.history = [dict(row) for row in state["history"]]
        self.ctx.sessions = [dict(s) for s in state.get("sessions", [])]
        _restore_steps(state, self.warmup, self.steplog, self.history, self.data, config)
        self.position = _resume_position(path, state, self.d)
        self.ctx.started = str(state.get("started_at", self.ctx.started))
        recorded = state.get("recipe") or {}
        assert isinstance(recorded, dict)
        if recorded.get("epochs") != config.epochs:
            epochs = int(recorded.get("epochs") or 0)
            _change_epochs(config, epochs, len(self.history), self.scheduler)

    def write_tables(self) -> None:
        """metrics.csv (and steps.csv) from the history: they agree with the checkpoint."""
        self.d.on_main(write_metrics, self.folder.path, self.history)
        if len(self.steplog):
            self.d.on_main(write_steps, self.folder.path, self.steplog.rows)

    def ready(self, progress: Progress | None) -> None:
        """Compile if asked, set the progress line up (rank 0 only), note the git commit."""
        config, d = self.config, self.d
        self.net = torch.compile(self.ddp) if config.compile else self.ddp
        self.eval_net = self.net
        if d.distributed:  # evaluation runs on each rank's own copy, outside DDP's collectives
            self.eval_net = torch.compile(self.model) if config.compile else self.model
        self.progress = progress or Progress(config.progress_interval)
        if not d.is_main:
            self.progress.enabled = False
        self.ctx.git_commit, self.ctx.git_dirty = git_commit()

    def write_summary(self, status: str) -> dict[str, object]:
        """Write summary.json (rank 0) with `status`; return it."""
        result = self.ctx.summary(status, self.history)
        self.d.on_main(write_summary, self.folder.path, result)
        return result

    def begin_session(self) -> None:
        """Say what runs, record this session, and mark the run running."""
        config, d, data = self.config, self.d, self.data
        log.info(
            "training %s on %s (%d train / %d test images) for epochs %d-%d on %s%s; %s parameters%s",
            config.model,
            config.dataset,
            len(data.train),
            data.info["test_size"],
            len(self.history) + 1,
            config.epochs,
            self.ctx.device_name,
            " (bf16 autocast)" if self.rt.bf16 else "",
            f"{self.ctx.parameters:,}",
            f"; {d.world_size} processes ({d.backend}), global batch {config.batch_size}"
            if d.distributed
            else "",
        )
        if self.warmup.active:
            log.info("%s (%d done)", self.warmup.describe(), self.warmup.step)
        session = {
            "started_at": utc_now(),
            "start_epoch": len(self.history) + 1,
            "epochs": config.epochs,
            "device": str(self.rt.device),
            "world_size": d.world_size,
        }
        self.ctx.sessions.append(session)
        self.write_summary("running")

    def train(self) -> dict[str, object]:
        """Train the epochs left; the summary of the last one. A stop is recorded in summary.json."""
        config = self.config
        self.mid = MidEpoch(
            config.checkpoint_interval(), resume=self.position, is_main=self.d.is_main
        )
        self.mid.save = self.save_position
        self.lr = self.optimizer.param_groups[0]["lr"]
        result: dict[str, object] = {}
        stop = recording_stop(self.write_summary, self._write_stopped, before=self._stopping)
        with stop, deferred_interrupts() as self.mid.interrupts:
            for epoch in range(len(self.history) + 1, config.epochs + 1):
                result = self.epoch(epoch)
        return result

    def epoch(self, epoch: int) -> dict[str, object]:
        """Train and evaluate one epoch, then write checkpoint.pt, metrics.csv and summary.json."""
        config, d, position = self.config, self.d, self.position
        resumed = float(position["seconds"]) if position and len(self.history) + 1 == epoch else 0.0  # type: ignore[arg-type]
        t0 = time.perf_counter() - resumed
        self.lr = self.optimizer.param_groups[0]["lr"]
        set_drop_path(self.model, config, epoch)
        train_loss, train_acc = train_epoch(
            self.net,
            self.data.train,
            self.optimizer,
            config,
            epoch,
            self.rt,
            self.progress,
            d,
            warmup=self.warmup,
            steplog=self.steplog if config.log_steps else None,
            mid=self.mid,
        )
        d.broadcast_buffers(self.model)  # every rank evaluates rank 0's model, the one saved
        test = eval_metrics(self.eval_net, self.data.test, config.eval_batch_size, self.rt, d)
        seconds = time.perf_counter() - t0
        self.history.append(self._row(epoch, train_loss, train_acc, test, seconds))
        self.scheduler.step()
        self.checkpoint()
        self.mid.written()
        d.on_main(write_metrics, self.folder.path, self.history)
        result = self.write_summary("completed" if epoch == config.epochs else "running")
        self.progress.clear()
        self.progress.end_epoch(seconds)
        _log_epoch(self.history, config.epochs, self.progress.run_left(epoch, config.epochs))
        if _stop_requested(d, self.mid):  # a signal during the evaluation: stop after the epoch
            self.mid.interrupts.raise_requested()
        return result

    def _row(
        self,
        epoch: int,
        train_loss: float,
        train_acc: float,
        test: dict[str, float],
        seconds: float,
    ) -> dict[str, float]:
        """The metrics.csv row of a finished epoch."""
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "test_loss": test["loss"],
            "test_acc": test["acc"],
            "lr": self.lr,
            "seconds": seconds,
        }
        if self.data.report_top5:
            row["test_top5_acc"] = test["top5_acc"]
        return row

    def checkpoint(self, position: dict[str, object] | None = None) -> None:
        """Write checkpoint.pt (rank 0) and steps.csv, which agrees with it."""
        self.d.on_main(save_checkpoint, self.checkpoint_path, self._state(position))
        if len(self.steplog):
            self.d.on_main(write_steps, self.folder.path, self.steplog.rows)

    def _state(self, position: dict[str, object] | None) -> dict[str, object]:
        """What checkpoint.pt holds (see derive.train.checkpoint)."""
        return {
            "epoch": len(self.history),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "history": self.history,
            "sessions": self.ctx.sessions,
            "started_at": self.ctx.started,
            "recipe": self.config.recipe(),
            "model_id": self.ctx.model_id,
            "data_id": self.ctx.data_id,
            "normalization": self.data.normalization,
            "warmup": self.warmup.state_dict(),
            "steps": self.steplog.state(),
            "position": position,
        }

    def save_position(
        self, epoch: int, step: int, steps: int, seconds: float, sums: EpochSums, warm: Warmup
    ) -> None:
        """A checkpoint after `step` of `epoch` (every rank calls it: each one's state is gathered)."""
        d = self.d
        ranks = d.gather(rank_entry(sums, warm))
        where = {"epoch": epoch, "step": step, "steps": steps, "world_size": d.world_size}
        self.checkpoint({**where, "seconds": seconds, "lr": self.lr, "ranks": ranks})
        self.mid.written()
        log.info("checkpoint written after step %d/%d of epoch %d", step, steps, epoch)

    def _stopping(self, exc: BaseException) -> None:
        """Before the stop is recorded: clear the progress line; after a divergence, write the
        steps up to the non-finite loss (--log-steps), to see how it diverged."""
        self.progress.clear()
        if isinstance(exc, TrainingDiverged) and self.config.log_steps:
            self.steplog.flush()
            self.d.on_main(write_steps, self.folder.path, self.steplog.rows)

    def _write_stopped(self, status: str) -> None:
        """summary.json of an interrupted or failed run: rank 0 alone, with no collective (the other
        ranks may be gone)."""
        if self.d.is_main:
            write_summary(self.folder.path, self.ctx.summary(status, self.history))


def train_epoch(
    model: nn.Module,
    batches: TrainSource,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    epoch: int,
    rt: Runtime,
    progress: Progress,
    d: Dist = SINGLE,
    warmup: Warmup | None = None,
    steplog: StepLog | None = None,
    mid: MidEpoch | None = None,
) -> tuple[float, float]:
    """One pass over the training set; returns (mean loss, accuracy) on the augmented batches.

    Distributed: this rank trains on its share of each global step; loss and accuracy are summed
    over all ranks, so they are those of the whole epoch. `warmup` scales the lr of its warm-up
    steps; `steplog` records every step (--log-steps; this rank's batch). `mid` writes checkpoints
    within the epoch, stops after a step when interrupted, and resumes the epoch at a saved step.
    """
    warmup = warmup or Warmup()
    mid = mid or MidEpoch()
    torch.manual_seed(
        d.rank_seed(derive_seed(config.seed, epoch, "model"))
    )  # dropout and the like replay on resume
    model.train()
    shares = epoch_shares(len(batches), config.batch_size, d.rank, d.world_size)
    start = mid.resume_step(epoch)
    batch_iter = _started(
        batches.train_batches(
            config.batch_size, config.seed, epoch, rows=[s.rows for s in shares[start:]]
        )
    )  # a DataLoader draws its seed from torch's RNG as it starts: before the RNG is restored
    start, before, sums = mid.start(epoch, d.rank, d.world_size, warmup, rt.device)
    watch = _EpochWatch(config, epoch, len(shares), rt, progress, d, mid, start, before)
    steps = zip(batch_iter, shares[start:], strict=True)
    for i, ((x, y), share) in enumerate(steps, start=start + 1):
        _train_step(model, x, y, share, optimizer, config, rt, epoch, warmup, steplog, sums)
        watch.after_step(i, sums, warmup, steplog)
    if steplog is not None:
        steplog.flush()
    return watch.total / watch.seen, watch.correct / watch.seen


def _train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    share: Share,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    rt: Runtime,
    epoch: int,
    warmup: Warmup,
    steplog: StepLog | None,
    sums: EpochSums,
) -> None:
    """One optimizer step on this rank's part (`share`) of a global batch, added to `sums`."""
    with rt.autocast():
        logits, loss = training_loss(model(x), y, config.auxiliary_weight)
    optimizer.zero_grad(set_to_none=True)
    # share.weight is 1 except for an unevenly split last step (sharding.py)
    (loss if share.weight == 1.0 else loss * share.weight).backward()
    norm = grad_norm(model.parameters()) if steplog is not None else None  # before clipping
    clip_gradients(model, config)
    with warmup.scaled(optimizer) as lr_used:
        optimizer.step()
    hits = (logits.detach().argmax(1) == y).sum()
    if steplog is not None:
        steplog.record(warmup.step + 1, epoch, loss, hits, y.shape[0], lr_used, norm)
    counts = warmup.needs_counts and share.count
    warmup.after_step(*((y.shape[0] - hits.item(), y.shape[0]) if counts else ()))
    if share.count:
        sums.loss_sum += loss.detach().double() * share.count
        sums.correct += hits
        sums.seen += share.count


class _EpochWatch:
    """What happens between an epoch's steps: the loss check and the progress line where the ranks
    sum their metrics, and the checkpoints within the epoch."""

    def __init__(
        self,
        config: TrainConfig,
        epoch: int,
        n_batches: int,
        rt: Runtime,
        progress: Progress,
        d: Dist,
        mid: MidEpoch,
        start: int,
        before: float,
    ) -> None:
        self.config, self.epoch, self.n_batches, self.rt = config, epoch, n_batches, rt
        self.progress, self.d, self.mid = progress, d, mid
        self.start, self.before = start, before  # the step resumed after, its seconds so far
        self.saved = start  # the step of this epoch checkpoint.pt holds (0: the epoch's start)
        self.total, self.correct, self.seen = 0.0, 0, 0  # summed over the ranks at the last sync
        self.t_start = time.perf_counter()
        progress.start_epoch()

    def after_step(self, i: int, sums: EpochSums, warmup: Warmup, steplog: StepLog | None) -> None:
        """After step `i`: sum and check the loss when due, show progress, checkpoint when due."""
        d, mid = self.d, self.mid
        flags = mid.local_flags()
        synced = i % self.rt.sync_every == 0 or i == self.n_batches
        if synced:
            self.total, self.correct, self.seen, flags = _epoch_sums(d, sums, flags)
            if not math.isfinite(self.total):
                raise self.diverged(self.total, i)
            if self.progress.due():
                self.show(i)
        elif d.distributed:  # the ranks agree on a checkpoint only where they sum anyway
            flags = Flags()
        if i < self.n_batches and mid.due(flags, warmup.step):
            self.checkpoint(i, synced, flags, sums, warmup, steplog)

    def show(self, i: int) -> None:
        """The progress line after step `i`."""
        now = time.perf_counter()
        rate = self.progress.rate(self.seen)
        self.progress.show(
            self.epoch,
            self.config.epochs,
            i,
            self.n_batches,
            self.total / self.seen,
            self.correct / self.seen,
            rate,
            step_seconds=(now - self.t_start) / (i - self.start),
        )

    def checkpoint(
        self,
        i: int,
        synced: bool,
        flags: Flags,
        sums: EpochSums,
        warmup: Warmup,
        steplog: StepLog | None,
    ) -> None:
        """A checkpoint after step `i` (then stop, if a signal asked for it)."""
        mid = self.mid
        if not synced:  # never save a diverged state: the ranks agree on due, so all sum here
            total = _epoch_sums(self.d, sums, Flags())[0]
            if not math.isfinite(total):
                raise self.diverged(total, i)
        if flags.stop:
            mid.interrupts.hold()  # writing the checkpoint may take longer than the grace
        if steplog is not None:
            steplog.flush()
        self.progress.clear()
        seconds = self.before + time.perf_counter() - self.t_start
        mid.save(self.epoch, i, self.n_batches, seconds, sums, warmup)
        self.saved = i
        if flags.stop:
            mid.interrupts.raise_requested()

    def diverged(self, total: float, i: int) -> TrainingDiverged:
        return _diverged(self.config, self.epoch, total, i, self.n_batches, self.saved)


def _started(batches: Iterator[Batch]) -> Iterator[Batch]:
    """`batches` with its first item already drawn (so whatever starting it does has happened)."""
    first = next(batches, None)
    return batches if first is None else itertools.chain([first], batches)


def _diverged(
    config: TrainConfig, epoch: int, total: float, i: int, n: int, saved: int
) -> TrainingDiverged:
    if saved:
        kept = (
            f"{config.out}/checkpoint.pt still holds the last good step ({saved} of epoch {epoch})"
        )
    elif epoch > 1:
        kept = f"{config.out}/checkpoint.pt still holds the last good epoch ({epoch - 1})"
    else:
        kept = "no checkpoint was written"
    return TrainingDiverged(
        f"training loss became {total} in epoch {epoch} (detected at batch {i}/{n}); "
        f"stopped, and {kept}. Try a lower --lr"
    )


def _log_epoch(history: list[dict[str, float]], epochs: int, left: float) -> None:
    """The permanent line of a finished epoch, with the time the run has left."""
    row = history[-1]
    best = min(history, key=lambda r: (-r["test_acc"], r["epoch"]))
    log.info(
        "epoch %d/%d  train loss %.4f acc %.2f%%  test loss %.4f err %.2f%%  lr %.4g  %.1f s  "
        "(best err %.2f%% @ %d)%s",
        row["epoch"],
        epochs,
        row["train_loss"],
        100 * row["train_acc"],
        row["test_loss"],
        100 * (1 - row["test_acc"]),
        row["lr"],
        row["seconds"],
        100 * (1 - best["test_acc"]),
        best["epoch"],
        f"  run: {time_left(left)}" if row["epoch"] < epochs else "",
    )


def _stop_requested(d: Dist, mid: MidEpoch) -> bool:
    """Whether any rank was asked to stop (one all-reduce when distributed)."""
    flags = mid.local_flags()
    if d.distributed:
        flags = Flags.from_sums(*d.sum(torch.tensor(flags.values(), device=d.device)).tolist())
    return flags.stop


def _resume_position(path: Path, state: dict[str, object], d: Dist) -> dict[str, object] | None:
    """The checkpoint's position within an epoch (None: written at an epoch's end, or older)."""
    position = state.get("position")
    if not isinstance(position, dict):
        return None
    epoch, step, steps = position["epoch"], position["step"], position["steps"]
    log.info("resuming epoch %d after step %d of %d", epoch, step, steps)
    if position["world_size"] != d.world_size:
        log.warning(
            "%s was written within epoch %d by %d process(es), this run has %d: the rest of epoch %d "
            "continues, but its dropout draws and metric sums are not those of an uninterrupted run "
            "(from epoch %d on, every epoch is as on %d processes)",
            path,
            epoch,
            position["world_size"],
            d.world_size,
            epoch,
            epoch + 1,
            d.world_size,
        )
    return position


def _probe_labels(output: object) -> torch.Tensor:
    """Class-0 labels for the output of the unused-parameter probe (distributed.unused_parameters)."""
    logits = output[0] if isinstance(output, (tuple, list)) else output
    assert isinstance(logits, torch.Tensor)
    return torch.zeros(logits.shape[0], dtype=torch.int64, device=logits.device)


def _epoch_sums(d: Dist, sums: EpochSums, flags: Flags) -> tuple[float, int, int, Flags]:
    """(loss sum, correct, seen, checkpoint flags) over all ranks (this rank's own when single);
    one host sync, one all-reduce."""
    if not d.distributed:
        return sums.loss_sum.item(), int(sums.correct.item()), sums.seen, flags
    values = [sums.correct.double(), *map(sums.loss_sum.new_tensor, [sums.seen, *flags.values()])]
    total, total_correct, total_seen, *agreed = d.sum(
        torch.stack([sums.loss_sum, *values])
    ).tolist()
    return total, int(total_correct), int(total_seen), Flags.from_sums(*agreed)


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: EvalSource, batch_size: int, rt: Runtime
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over a whole set, in eval mode, no augmentation."""
    result = eval_metrics(model, batches, batch_size, rt)
    return result["loss"], result["acc"]


@torch.no_grad()
def eval_metrics(
    model: nn.Module, batches: EvalSource, batch_size: int, rt: Runtime, d: Dist = SINGLE
) -> dict[str, float]:
    """Mean cross-entropy, top-1 and top-5 accuracy over a whole set (each rank holding its part:
    sums and counts are added over the ranks), in eval mode, no augmentation."""
    model.eval()
    # loss sum, top-1 correct, top-5 correct, count
    sums = torch.zeros(4, dtype=torch.float64, device=rt.device)
    for x, y in batches.eval_batches(batch_size):
        with rt.autocast():
            logits = model(x)
        k = min(5, logits.shape[1])
        hits = (logits.topk(k, dim=1).indices == y[:, None]).any(1)
        sums += torch.stack(
            [
                F.cross_entropy(logits.float(), y, reduction="sum").double(),
                (logits.argmax(1) == y).sum().double(),
                hits.sum().double(),
                sums.new_tensor(float(y.shape[0])),
            ]
        )
    loss, top1, top5, count = d.sum(sums).tolist()
    if count == 0:
        raise UserError("the test set yielded no images to evaluate")
    return {"loss": loss / count, "acc": top1 / count, "top5_acc": top5 / count}


def _check_memory(
    model: nn.Module, config: TrainConfig, data: TrainData, rt: Runtime, d: Dist
) -> None:
    batch = config.batch_size // d.world_size  # this rank's part of the global batch
    try:
        needed = training_bytes(
            model, batch, data.resident_bytes, image=(3, data.input_size, data.input_size)
        )
    except Exception as exc:  # the estimate is a courtesy; build_model already checked the model
        log.debug("no memory estimate: %s: %s", type(exc).__name__, exc)
        return
    check_fits(
        needed,
        rt.device,
        f"training {config.model} with --batch-size {config.batch_size}"
        + (f" ({batch} per process)" if d.distributed else ""),
        "lower --batch-size",
    )


def _restore_steps(
    state: dict[str, object],
    warmup: Warmup,
    steplog: StepLog,
    history: list[dict[str, float]],
    data: TrainData,
    config: TrainConfig,
) -> None:
    """The warm-up state and the step log of a checkpoint (older ones have neither: steps counted)."""
    if isinstance(state.get("warmup"), dict):
        warmup.load_state_dict(state["warmup"])
    else:  # an older checkpoint: its recipe had no warm-up (the resume check made sure of that)
        warmup.step = len(history) * len(epoch_shares(len(data.train), config.batch_size, 0, 1))
    steps = state.get("steps")
    if isinstance(steps, torch.Tensor):
        steplog.rows = steps.to(torch.float64)


def _count_parameters(model: nn.Module) -> int:
    return count_parameters(model)


def _count_flops(model: nn.Module, input_size: int = 32) -> int | None:
    try:
        return count_flops(model, (1, 3, input_size, input_size))
    except Exception as exc:  # counting is informative only; never block a run on it
        log.warning("could not count FLOPs: %s: %s", type(exc).__name__, exc)
        return None


def _change_epochs(
    config: TrainConfig,
    before: int,
    done: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Resume a run with another --epochs: the lr schedule becomes the one for config.epochs.

    The epochs already done keep the rates they were trained with; the next epoch gets the rate the
    new schedule gives it (config.lr_at), and the milestones ahead are the new ones.
    """
    if config.epochs < done:
        raise UserError(
            f"--epochs {config.epochs}: the run already holds {done} epochs; "
            f"give --epochs {done} or more to resume it"
        )
    if config.epochs == done:
        log.info("--epochs %d: the run ends with the %d epochs it holds", config.epochs, done)
        return
    retarget(scheduler, config)
    lr = config.lr_at(done + 1)
    for group in scheduler.optimizer.param_groups:
        group["lr"] = lr
    scheduler._last_lr = [lr for _ in scheduler.optimizer.param_groups]
    log.warning(
        "resuming with --epochs %d instead of %d: epochs %d-%d follow the schedule for %d epochs "
        "(%s; epoch %d runs at %g); epochs 1-%d keep the rates they had",
        config.epochs,
        before,
        done + 1,
        config.epochs,
        config.epochs,
        describe_schedule(config),
        done + 1,
        lr,
        done,
    )


@dataclass
class _RunContext:
    """What a run's summary reports besides the metrics history."""

    config: TrainConfig
    data: TrainData
    data_id: str
    model_id: str
    parameters: int
    auxiliary_parameters: int
    flops: int | None
    device_name: str
    rt: Runtime
    dist: Dist
    started: str
    sessions: list[dict[str, object]]
    git_commit: str | None
    git_dirty: bool | None

    def summary(self, status: str, history: list[dict[str, float]]) -> dict[str, object]:
        """The content of summary.json."""
        config, flops = self.config, self.flops
        last = history[-1] if history else None
        best = min(history, key=lambda r: (-r["test_acc"], r["epoch"])) if history else None
        top5 = (
            {
                "final_test_top5_error_percent": 100 * (1 - last["test_top5_acc"])
                if last
                else None,
                "best_test_top5_error_percent": 100 * (1 - best["test_top5_acc"]) if best else None,
            }
            if self.data.report_top5
            else {}
        )
        return {
            "status": status,
            "epochs_completed": len(history),
            "epochs": config.epochs,
            "final_test_error_percent": 100 * (1 - last["test_acc"]) if last else None,
            "best_test_error_percent": 100 * (1 - best["test_acc"]) if best else None,
            "best_epoch": int(best["epoch"]) if best else None,
            **top5,
            "final_test_loss": last["test_loss"] if last else None,
            "final_train_loss": last["train_loss"] if last else None,
            "wall_time_seconds": sum(r["seconds"] for r in history),
            "wall_time_note": "sum of the seconds column: training and evaluation of completed epochs",
            "model": {
                "spec": config.model,
                "id": self.model_id,
                "parameters": self.parameters,
                "parameters_without_auxiliary": self.parameters - self.auxiliary_parameters,
                "parameters_auxiliary_head": self.auxiliary_parameters,
                "parameters_note": PARAMETERS_NOTE,
                "flops": flops,
                "multiply_adds": flops // 2 if flops is not None else None,
                "flops_note": FLOPS_NOTE.format(size=self.data.input_size),
            },
            "dataset": self.data.info,
            "world_size": self.dist.world_size,
            "distributed": self.dist.describe(),
            "device": {
                "name": self.device_name,
                "precision": "bf16 autocast" if self.rt.bf16 else "fp32",
                "memory_format": "channels_last"
                if self.rt.memory_format == torch.channels_last
                else "contiguous",
                "compile": config.compile,
            },
            "software": software(self.git_commit, self.git_dirty),
            "options": config.to_dict(),
            "started_at": self.started,
            "updated_at": utc_now(),
            "sessions": self.sessions,
        }
