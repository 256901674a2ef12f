"""`run_search(config)`: DARTS's search loop (quark0/darts train_search.py) over a derived space.

Per step: the architecture step on the next batch of the architecture half (derive.nas.architect;
first order, or second order with ξ = the current weight lr), then the weight step on the weight
half's batch: SGD with momentum, gradient norm clipped, on `weights()` only. Per epoch: evaluate the
supernet on the architecture half (eval mode), derive the genotype, then write checkpoint.pt,
metrics.csv, genotype.json and summary.json, each atomically, so `--resume` continues bit-exactly
after the last completed epoch. Bad input raises UserError before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from derive.devices import device_name
from derive.errors import UserError
from derive.memcheck import FLOAT, check_fits
from derive.nas.architect import Architect
from derive.nas.cellplot import write_plot
from derive.nas.genotype import Genotype
from derive.nas.searchconfig import ARCH_BETAS, SearchConfig
from derive.nas.searchdata import CyclingBatches, SearchData, load_search_data
from derive.nas.searchfiles import (
    METRICS_HEADER,
    compact,
    run_directory,
    write_genotype,
    write_metrics,
)
from derive.nas.spaces import SearchSpace, resolve_space
from derive.nas.supernet import (
    SearchNetwork,
    build_supernet,
    check_sizes,
    supernet_activation_count,
    supernet_weight_count,
    with_ops,
)
from derive.rundir import CHECKPOINT, RunDirectory, TrainingDiverged, recording_stop, write_summary
from derive.train.augment import BatchMaker, derive_seed
from derive.train.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from derive.train.progress import Progress
from derive.train.provenance import git_commit, rng_state, set_rng_state, software, utc_now

log = logging.getLogger(__name__)
KIND = "nas-search"


def prepare_space(config: SearchConfig) -> SearchSpace:
    """The configured space over the configured operations (UserError for unknown names)."""
    return with_ops(resolve_space(config.space, config.coefficients), config.ops)


def space_identity(space: SearchSpace) -> str:
    """'nas:NAME@sha256:…' of the space's full description (edges, coefficients, ops)."""
    text = json.dumps(space.to_json(), sort_keys=True, default=str)
    return f"nas:{space.name}@sha256:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def build(config: SearchConfig, space: SearchSpace) -> SearchNetwork:
    """The supernet, initialised from the run's seed (weights by PyTorch's default init, as DARTS)."""
    torch.manual_seed(derive_seed(config.seed, "init"))
    return build_supernet(
        space,
        channels=config.channels,
        cells=config.cells,
        num_classes=10,
        alpha_init=config.alpha_init,
        start=config.start,
        init_weight=config.init_weight,
    )


def search_bytes(config: SearchConfig, space: SearchSpace) -> int:
    """A lower bound on a search's memory, from the sizes alone (the supernet is not built): the
    weights with their gradients and momentum (order 2 also holds the unrolled w' and its
    gradient instead of w's), and the operation outputs one batch keeps for backward."""
    weights = supernet_weight_count(space, config.channels, config.cells)
    per_image = supernet_activation_count(space, config.channels, config.cells, config.image_size)
    copies = 4 if config.order == 2 else 3
    return FLOAT * (copies * weights + config.batch_size * per_image)


def check_memory(config: SearchConfig, space: SearchSpace, device: torch.device) -> None:
    """UserError, before anything is built or written, when the search cannot fit in memory."""
    check_sizes(config.channels, config.cells)  # the bounds' own message comes first
    weights = supernet_weight_count(space, config.channels, config.cells)
    check_fits(
        search_bytes(config, space),
        device,
        f"a search with --cells {config.cells} --channels {config.channels} "
        f"({weights:,} weights) at --batch-size {config.batch_size}, --image-size "
        f"{config.image_size}",
        "lower --cells, --channels, --batch-size or --image-size",
    )


def _device(config: SearchConfig) -> torch.device:
    if config.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available")
    cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if cuda else "cpu")


def run_search(config: SearchConfig, progress: Progress | None = None) -> dict[str, object]:
    """Search as `config` says, writing the run directory; return the summary (also summary.json)."""
    folder = run_directory(Path(config.out).expanduser())
    folder.check(config.resume, config.force)
    device = _device(config)
    space = prepare_space(config)
    check_memory(config, space, device)  # before the supernet is allocated or any data is read
    model = build(config, space)  # validates the initialisation before any data is read
    data = load_search_data(
        config.dataset,
        config.data_dir,
        config.image_size,
        config.train_portion,
        config.limit_images,
        config.augment,
        device,
    )
    state = _load_state(folder.path, config, space_identity(space), data.data.fingerprint())
    _check_halves(data)
    for stale in folder.open(config.force):
        log.info("removed %s (left by a run killed while writing)", stale)
    search = _Search.create(config, space, model, data, device, folder)
    if state is not None:
        search.restore(state)
    search.ready(progress)
    if len(search.history) >= config.epochs:
        log.info("%s already holds all %d epochs; nothing to do", folder.path, config.epochs)
        return search.write_summary("completed")
    search.begin_session()
    result = search.run()
    if config.plot:
        write_plot(model.genotype(), folder.path)
    return result


def _load_state(
    run_dir: Path, config: SearchConfig, model_id: str, data_id: str
) -> dict[str, object] | None:
    """The checkpoint to resume from (None: a new search), checked to fit the space, data, recipe."""
    ckpt_path = run_dir / CHECKPOINT
    if config.resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path, search_history=METRICS_HEADER)
        if state.get("kind") != KIND:
            raise UserError(f"{ckpt_path} is not an architecture-search checkpoint")
        check_compatible(ckpt_path, state, config.recipe(), model_id, data_id)
        return state
    if config.resume:
        log.info("no checkpoint in %s: starting a new search", run_dir)
    return None


@dataclass
class _Search:
    """A search under way: the supernet, its two optimizers, the history, the run folder."""

    config: SearchConfig
    space: SearchSpace
    model: SearchNetwork
    data: SearchData
    device: torch.device
    folder: RunDirectory
    weight_opt: torch.optim.Optimizer
    arch_opt: torch.optim.Optimizer
    architect: Architect
    started: str
    history: list[dict[str, object]] = field(default_factory=list)
    sessions: list[dict[str, object]] = field(default_factory=list)
    arch_state: dict[str, int] = field(default_factory=lambda: {"cycle": 0, "position": 0})
    arch_batches: CyclingBatches = field(init=False)  # set by ready()
    progress: Progress = field(init=False)
    info: _RunInfo = field(init=False)

    @classmethod
    def create(
        cls,
        config: SearchConfig,
        space: SearchSpace,
        model: SearchNetwork,
        data: SearchData,
        device: torch.device,
        folder: RunDirectory,
    ) -> _Search:
        """Move the supernet to the device and make the weight and architecture optimizers."""
        model.to(device)
        weight_opt = torch.optim.SGD(
            model.weights(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        arch_opt = torch.optim.Adam(
            model.arch_parameters(),
            lr=config.arch_lr,
            betas=ARCH_BETAS,
            weight_decay=config.arch_weight_decay,
        )
        architect = Architect(model, model.arch_parameters(), arch_opt, weight_opt, config.order)
        return cls(
            config, space, model, data, device, folder, weight_opt, arch_opt, architect, utc_now()
        )

    def restore(self, state: dict[str, object]) -> None:
        """Continue from a checkpoint: states, RNG, history, the architecture batches' position."""
        self.model.load_state_dict(state["model"])
        self.weight_opt.load_state_dict(state["weight_optimizer"])
        self.arch_opt.load_state_dict(state["arch_optimizer"])
        set_rng_state(state["rng"])
        self.history = [dict(row) for row in state["history"]]
        self.sessions = [dict(s) for s in state.get("sessions", [])]
        self.started = str(state.get("started_at", self.started))
        self.arch_state = dict(state["arch_batches"])

    def ready(self, progress: Progress | None) -> None:
        """The architecture half's batches (where they stopped), the progress line, the summary."""
        config = self.config
        cycle, position = self.arch_state["cycle"], self.arch_state["position"]
        self.arch_batches = CyclingBatches(
            self.data.val, config.batch_size, config.seed, cycle, position
        )
        self.progress = progress or Progress(config.progress_interval)
        self.info = _RunInfo(
            config, self.space, self.model, self.data, self.device, self.started, self.sessions
        )

    def write_summary(self, status: str) -> dict[str, object]:
        result = self.info.summary(status, self.history)
        write_summary(self.folder.path, result)
        return result

    def begin_session(self) -> None:
        """Say what runs, record this session, and mark the search running."""
        config, data, space, info = self.config, self.data, self.space, self.info
        log.info(
            "searching space %s (%d edges per cell) on %s: %d weight / %d architecture images at "
            "%dx%d, epochs %d-%d, order %d, on %s; %s weights",
            space.name,
            space.num_edges,
            config.dataset,
            len(data.train),
            len(data.val),
            data.image_size,
            data.image_size,
            len(self.history) + 1,
            config.epochs,
            config.order,
            info.device_name,
            f"{info.weight_count:,}",
        )
        start = len(self.history) + 1
        self.sessions.append(
            {"started_at": utc_now(), "start_epoch": start, "device": str(self.device)}
        )
        self.write_summary("running")

    def run(self) -> dict[str, object]:
        """Search the epochs left; the summary of the last one. A stop is recorded in summary.json."""
        result: dict[str, object] = {}
        with recording_stop(self.write_summary, before=lambda exc: self.progress.clear()):
            for epoch in range(len(self.history) + 1, self.config.epochs + 1):
                result = self.epoch(epoch)
        return result

    def epoch(self, epoch: int) -> dict[str, object]:
        """One search epoch, its evaluation and genotype; then every file of the run folder."""
        config = self.config
        t0, c0 = time.perf_counter(), time.process_time()
        lr = config.lr_at(epoch)
        for group in self.weight_opt.param_groups:
            group["lr"] = lr
        train_loss, train_acc, arch_loss = search_epoch(
            self.model,
            self.architect,
            self.data.train,
            self.arch_batches,
            self.weight_opt,
            config,
            epoch,
            lr,
            self.progress,
        )
        val_loss, val_acc = evaluate(self.model, self.data.val, config.eval_batch_size)
        genotype = self.model.genotype()
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "arch_loss": arch_loss,
            "lr": lr,
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0,
            "genotype": compact(genotype),
        }
        self.history.append(row)
        save_checkpoint(self.folder.path / CHECKPOINT, self._state(epoch))
        write_metrics(self.folder.path, self.history)
        write_genotype(self.folder.path, genotype)
        result = self.write_summary("completed" if epoch == config.epochs else "running")
        self.progress.clear()
        _log_epoch(row, config.epochs, genotype)
        return result

    def _state(self, epoch: int) -> dict[str, object]:
        """What checkpoint.pt holds after `epoch`."""
        return {
            "kind": KIND,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "weight_optimizer": self.weight_opt.state_dict(),
            "arch_optimizer": self.arch_opt.state_dict(),
            "arch_batches": self.arch_batches.state(),
            "rng": rng_state(),
            "history": self.history,
            "sessions": self.sessions,
            "started_at": self.started,
            "recipe": self.config.recipe(),
            "model_id": space_identity(self.space),
            "data_id": self.info.fingerprint,
        }


def _log_epoch(row: dict[str, object], epochs: int, genotype: Genotype) -> None:
    """The permanent line of a finished search epoch."""
    log.info(
        "epoch %d/%d  train loss %.4f acc %.2f%%  val loss %.4f acc %.2f%%  lr %.4g  %.1f s  "
        "normal %s",
        row["epoch"],
        epochs,
        row["train_loss"],
        100 * row["train_acc"],  # type: ignore[operator]
        row["val_loss"],
        100 * row["val_acc"],  # type: ignore[operator]
        row["lr"],
        row["seconds"],
        " ".join(f"{op}@{i}" for node in genotype.normal for op, i in node),
    )


def _check_halves(data: SearchData) -> None:
    """UserError if a half is smaller than BatchNorm's two images."""
    for name, half in (("weight", data.train), ("architecture", data.val)):
        if len(half) < 2:
            raise UserError(f"the {name} half has {len(half)} image(s); BatchNorm needs 2")


def search_epoch(
    model: SearchNetwork,
    architect: Architect,
    train: BatchMaker,
    arch_batches: CyclingBatches,
    weight_opt: torch.optim.Optimizer,
    config: SearchConfig,
    epoch: int,
    lr: float,
    progress: Progress,
) -> tuple[float, float, float]:
    """One pass over the weight half; returns (train loss, train accuracy, mean architecture loss)."""
    model.train()
    weights = model.weights()
    n_batches = train.num_batches(config.batch_size)
    loss_sum, arch_sum, correct, seen, steps = 0.0, 0.0, 0, 0, 0
    progress.start_epoch()
    for i, (x, y) in enumerate(train.train_batches(config.batch_size, config.seed, epoch), 1):
        if y.shape[0] < 2:  # a final batch of one image: BatchNorm cannot train on it
            continue
        arch_sum += architect.step((x, y), next(arch_batches), lr)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        weight_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, config.grad_clip)
        weight_opt.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"training loss became {value} in epoch {epoch} (batch {i}/{n_batches}); stopped, "
                f"and {config.out}/checkpoint.pt holds the last good epoch ({epoch - 1}). Try a lower --lr"
            )
        loss_sum += value * y.shape[0]
        steps += 1
        correct += int((logits.detach().argmax(1) == y).sum())
        seen += y.shape[0]
        if progress.due():
            rate = progress.rate(seen)
            progress.show(epoch, config.epochs, i, n_batches, loss_sum / seen, correct / seen, rate)
    if seen == 0:
        raise UserError("the weight half holds no batch of 2 or more images; use more images")
    return loss_sum / seen, correct / seen, arch_sum / steps


@torch.no_grad()
def evaluate(model: SearchNetwork, batches: BatchMaker, batch_size: int) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of the supernet on a half, eval mode, no augmentation."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for x, y in batches.eval_batches(batch_size):
        logits = model(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    return loss_sum / len(batches), correct / len(batches)


class _RunInfo:
    """What summary.json reports besides the metrics history."""

    def __init__(
        self,
        config: SearchConfig,
        space: SearchSpace,
        model: SearchNetwork,
        data: SearchData,
        device: torch.device,
        started: str,
        sessions: list[dict[str, object]],
    ) -> None:
        self.config, self.space, self.model, self.data = config, space, model, data
        self.device, self.started, self.sessions = device, started, sessions
        self.device_name = device_name(device)
        self.weight_count = sum(p.numel() for p in model.weights())
        self.arch_count = sum(p.numel() for p in model.arch_parameters())
        self.git_commit, self.git_dirty = git_commit()
        self.fingerprint = data.data.fingerprint()

    def summary(self, status: str, history: list[dict[str, object]]) -> dict[str, object]:
        config, model = self.config, self.model
        last = history[-1] if history else None
        best = max(history, key=lambda r: (r["val_acc"], -r["epoch"])) if history else None  # type: ignore[operator]
        genotype = model.genotype()
        seconds = sum(float(r["seconds"]) for r in history)  # type: ignore[arg-type]
        cpu = sum(float(r.get("cpu_seconds", 0.0)) for r in history)  # type: ignore[arg-type]
        unit = "GPU-hours" if self.device.type == "cuda" else "CPU-hours"
        with torch.no_grad():
            arch = {
                "ops": list(self.space.ops),
                "normal": _rounded(model.op_weights(False)),
                "reduce": _rounded(model.op_weights(True)),
                "edge_normal": _rounded(model.edge_weights(False)),
                "edge_reduce": _rounded(model.edge_weights(True)),
            }
        return {
            "status": status,
            "epochs_completed": len(history),
            "epochs": config.epochs,
            "space": self.space.to_json(),
            "genotype": genotype.to_json(),
            "collapsed": {"normal": genotype.collapsed(False), "reduce": genotype.collapsed(True)},
            "final_val_acc": last["val_acc"] if last else None,
            "final_val_loss": last["val_loss"] if last else None,
            "best_val_acc": best["val_acc"] if best else None,
            "best_epoch": best["epoch"] if best else None,
            "search_cost": {
                "seconds": seconds,
                "hours": seconds / 3600,
                "unit": unit,
                "process_cpu_seconds": cpu,
                "process_cpu_hours": cpu / 3600,
                "threads": torch.get_num_threads(),
                "note": "hours: wall-clock time of the completed search epochs on one device (the "
                "papers' GPU-days are wall-clock days on one GPU); process_cpu_hours: the CPU time "
                "the search process used in them (all its threads), which on a shared machine is "
                "below the wall-clock time",
            },
            "parameters": {"weights": self.weight_count, "architecture": self.arch_count},
            "architecture_weights": arch,
            "dataset": {
                "name": self.data.data.name,
                "folder": str(self.data.data.folder),
                "weight_half": len(self.data.train),
                "architecture_half": len(self.data.val),
                "image_size": self.data.image_size,
                "test_set_used": False,
                "fingerprint": self.fingerprint,
                "normalization": {"mean": self.data.mean, "std": self.data.std},
            },
            "device": {"name": self.device_name, "precision": "fp32"},
            "software": software(self.git_commit, self.git_dirty),
            "options": config.to_dict(),
            "started_at": self.started,
            "updated_at": utc_now(),
            "sessions": self.sessions,
        }


def _rounded(t: torch.Tensor | None) -> list | None:
    if t is None:
        return None
    return [
        round(float(v), 6) if not isinstance(v, list) else [round(x, 6) for x in v]
        for v in t.tolist()
    ]


__all__ = [
    "KIND",
    "build",
    "check_memory",
    "evaluate",
    "prepare_space",
    "run_search",
    "search_bytes",
    "search_epoch",
    "space_identity",
]
