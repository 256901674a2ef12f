"""`derive train` on many processes: torchrun's environment, the process group, DDP, and the few
collectives the loop needs (exact sums, rank-0 file writes, agreement on bad input).

    torchrun --standalone --nproc_per_node=4 -m derive train hbnet56 --data-dir D --out RUN

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous address; this module reads them (as
timm's `init_distributed_device` does) and picks the backend from the device: NCCL on CUDA, gloo on
the CPU. Without WORLD_SIZE > 1 everything here is a no-op and `derive train` is one plain process.

Rules every rank follows (so no rank waits forever on another):
- `--batch-size` is the global batch; WORLD_SIZE must divide it (checked before any process group).
- Bad input found by any rank (`agreement`) stops every rank with the same one-line UserError.
- Only rank 0 touches RUN_DIR (`on_main`): it writes each file atomically, then every rank passes
  the same broadcast, which is the barrier after the write; a failed write stops every rank.
- Metrics are reduced as sums and counts (`sum`), never as averages of averages.
- A rank that dies makes the others' next collective fail; `rank_lost` turns that error into one
  clear line (exit status 4), and RUN_DIR keeps the last checkpoint rank 0 finished writing.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import gc
import logging
import os
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch.distributed as dist
import torch.nn as nn

from derive.devices import device_name
from derive.errors import UserError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Default seconds a collective may wait for the other ranks (rank 0 writing a large checkpoint, a slow
# node); past it the job fails instead of hanging. torch's own default is 10 minutes for NCCL.
DEFAULT_TIMEOUT = 1800.0


class RankLost(Exception):
    """Another rank of a distributed run died or stopped answering; RUN_DIR keeps the last checkpoint."""

    exit_code = 4


@dataclass(frozen=True)
class Launch:
    """Where this process sits in the job, as torchrun's environment says (all 0/1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launch_from_env(environ: dict[str, str] | None = None) -> Launch:
    """Read RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE; UserError if they are malformed."""
    env = os.environ if environ is None else environ

    def get(name: str, default: int) -> int:
        text = env.get(name)
        if text is None or text == "":
            return default
        try:
            return int(text)
        except ValueError:
            raise UserError(f"environment variable {name}={text!r} is not an integer") from None

    world = get("WORLD_SIZE", 1)
    rank = get("RANK", 0)
    local_rank = get("LOCAL_RANK", rank if world > 1 else 0)
    local_world = get("LOCAL_WORLD_SIZE", world)
    if world < 1 or not 0 <= rank < world or not 0 <= local_rank < max(local_world, 1):
        raise UserError(
            f"inconsistent launch environment: RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local_rank} "
            f"LOCAL_WORLD_SIZE={local_world}"
        )
    return Launch(rank, world, local_rank, local_world)


def check_launch(launch: Launch, batch_size: int, sync_bn: bool, device_type: str) -> None:
    """What can be checked from the options and the environment alone, identically on every rank."""
    if batch_size % launch.world_size:
        raise UserError(
            f"--batch-size {batch_size} is the global batch and must be divisible by the world size "
            f"{launch.world_size} (WORLD_SIZE from torchrun): use a multiple of {launch.world_size}, "
            f"or another --nproc_per_node"
        )
    if sync_bn and not launch.distributed:
        log.warning("--sync-bn has no effect in a single process (it syncs BatchNorm across ranks)")
    if sync_bn and launch.distributed and device_type != "cuda":
        raise UserError(
            "--sync-bn needs CUDA (NCCL): torch.nn.SyncBatchNorm has no CPU implementation; "
            "drop --sync-bn for a gloo/CPU run"
        )
    if device_type == "cuda" and launch.distributed:
        count = torch.cuda.device_count()
        if launch.local_rank >= count:
            raise UserError(
                f"LOCAL_RANK {launch.local_rank} needs CUDA device {launch.local_rank}, but this node has "
                f"{count}: give torchrun --nproc_per_node={count} or fewer"
            )


@dataclass
class Dist:
    """This process's place in the run and the collectives the loop uses (no-ops for one process)."""

    launch: Launch = field(default_factory=Launch)
    backend: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    ranks: list[dict[str, object]] = field(default_factory=list)

    @property
    def rank(self) -> int:
        return self.launch.rank

    @property
    def world_size(self) -> int:
        return self.launch.world_size

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.launch.rank == 0

    def rank_seed(self, seed: int) -> int:
        """The seed of this rank's torch RNG (dropout and the like): rank 0 keeps `seed`, others differ."""
        return seed if self.rank == 0 else (seed + 0x9E3779B97F4A7C15 * self.rank) % (1 << 63)

    def describe(self) -> dict[str, object]:
        """The `distributed` block of summary.json."""
        ranks = self.ranks or [_rank_info(self.launch, self.device)]
        return {"world_size": self.world_size, "backend": self.backend, "ranks": ranks}

    # --- collectives -------------------------------------------------------------------------
    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """`values` summed over the ranks (a new tensor; the input when single): exact for counts."""
        if not self.distributed:
            return values
        total = values.detach().to(self.device, copy=True)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    def gather(self, value: T) -> list[T]:
        """Every rank's `value`, in rank order, on every rank ([value] when single)."""
        if not self.distributed:
            return [value]
        values: list[T] = [value] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm statistics), e.g. before evaluating."""
        if self.distributed:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)

    def on_main(
        self, fn: Callable[..., T], *args: object, share: bool = False, **kwargs: object
    ) -> T:
        """Run `fn` on rank 0 only (RUN_DIR's files); every rank waits for it, then returns its result
        (`share=True`: broadcast to all; otherwise None off rank 0) or raises its error."""
        if not self.distributed:
            return fn(*args, **kwargs)
        payload: list[object] = [None]
        error: BaseException | None = None
        result = None
        if self.is_main:
            try:
                result = fn(*args, **kwargs)
                payload = [("ok", result if share else None)]
            except UserError as exc:
                error, payload = exc, [("user", str(exc))]
            except BaseException as exc:
                error, payload = exc, [("fail", f"{type(exc).__name__}: {exc}")]
        dist.broadcast_object_list(payload, src=0, device=self._object_device())
        kind, value = payload[0]  # type: ignore[misc]
        if error is not None:
            raise error
        if kind == "user":
            raise UserError(str(value))
        if kind == "fail":
            raise RankLost(f"rank 0 failed: {value}")
        return result if self.is_main else value  # type: ignore[return-value]

    @contextlib.contextmanager
    def agreement(self) -> Iterator[None]:
        """Every rank runs the body; a UserError on any rank becomes the same UserError on all ranks."""
        if not self.distributed:
            yield
            return
        message: str | None = None
        try:
            yield
        except UserError as exc:
            message = str(exc)
        messages: list[str | None] = [None] * self.world_size
        dist.all_gather_object(messages, message)
        for rank, text in enumerate(messages):
            if text:
                raise UserError(text if rank == 0 else f"rank {rank}: {text}")

    def _object_device(self) -> torch.device | None:
        return self.device if self.backend == "nccl" else None

    # --- model -------------------------------------------------------------------------------
    def wrap(
        self,
        model: nn.Module,
        sync_bn: bool,
        input_size: int,
        objective: Callable[[object], torch.Tensor] | None = None,
    ) -> tuple[nn.Module, nn.Module]:
        """(module to save, module to train): DDP around the model (after SyncBN if asked) when
        distributed. `objective` maps the model's output to the training loss (default: the sum of
        every output tensor), to find the parameters a step leaves without gradient."""
        if not self.distributed:
            return model, model
        from torch.nn.parallel import DistributedDataParallel

        if sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        unused = unused_parameters(model, input_size, objective)
        if unused:
            log.info(
                "%d parameter tensors get no gradient in a training step (e.g. %s): DDP runs with "
                "find_unused_parameters=True",
                len(unused),
                unused[0],
            )
        ids = [self.device.index] if self.device.type == "cuda" else None
        return model, DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=bool(unused)
        )

    def close(self) -> None:
        """Leave the process group after a run that ended normally: a barrier first, so no rank
        closes its connections while another is still receiving its last broadcast."""
        if self.distributed and dist.is_initialized():
            dist.barrier()
            # DDP's reducer keeps the process group alive through reference cycles; collect it now,
            # while the interpreter is whole: a gloo group torn down at interpreter exit can abort
            # the process ("terminate called without an active exception", SIGABRT).
            gc.collect()
            dist.destroy_process_group()


def start(launch: Launch, device: torch.device, timeout: float = DEFAULT_TIMEOUT) -> Dist:
    """Join the process group (when WORLD_SIZE > 1) and return this rank's Dist, device chosen."""
    if not launch.distributed:
        return Dist(launch=launch, device=device)
    if device.type == "cuda":
        device = torch.device("cuda", launch.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    _quiet_other_ranks(launch.rank)
    try:
        dist.init_process_group(backend, timeout=_dt.timedelta(seconds=timeout))
    except (RuntimeError, ValueError) as exc:
        raise UserError(
            f"cannot join the process group ({backend}): {_first_line(exc)}; "
            "launch with torchrun (it sets MASTER_ADDR/MASTER_PORT)"
        ) from None
    d = Dist(launch=launch, backend=backend, device=device)
    infos: list[dict[str, object] | None] = [None] * launch.world_size
    dist.all_gather_object(infos, _rank_info(launch, device), group=None)
    d.ranks = [i for i in infos if i is not None]
    log.info(
        "distributed: %d processes (%s), rank 0 on %s",
        launch.world_size,
        backend,
        d.ranks[0]["host"],
    )
    return d


_LOST = re.compile(
    r"gloo|nccl|connection (reset|closed|refused)|closed by peer|broken pipe|timed out|timeout|socket",
    re.IGNORECASE,
)


def rank_lost(exc: BaseException, d: Dist, run_dir: str) -> RankLost | None:
    """A clear RankLost for an error that means another rank is gone; None for any other error."""
    if not d.distributed or isinstance(exc, (UserError, RankLost, KeyboardInterrupt)):
        return None
    if not (
        isinstance(exc, dist.DistError)
        or (isinstance(exc, RuntimeError) and _LOST.search(str(exc)))
    ):
        return None
    return RankLost(
        f"rank {d.rank} lost contact with the other ranks ({type(exc).__name__}: {_first_line(exc)[:120]}); "
        f"the job stops (torchrun's report names the rank that failed first). {run_dir}/checkpoint.pt "
        "keeps the last completed epoch: continue with --resume, on any world size that divides --batch-size"
    )


def unused_parameters(
    model: nn.Module, input_size: int, objective: Callable[[object], torch.Tensor] | None = None
) -> list[str]:
    """Names of parameters that get no gradient from a training-mode step on a 2-image batch (a copy of
    the model runs it, so the model's own statistics are untouched). DDP must know about them."""
    probe = copy.deepcopy(model)
    probe.train()
    device = next((p.device for p in probe.parameters()), torch.device("cpu"))
    out = probe(torch.zeros(2, 3, input_size, input_size, device=device))
    if objective is not None:
        loss = objective(out)
    else:
        tensors = [t for t in _flatten(out) if t.requires_grad]
        if not tensors:
            return []
        loss = torch.stack([t.float().sum() for t in tensors]).sum()
    if not loss.requires_grad:
        return []
    loss.backward()
    return [n for n, p in probe.named_parameters() if p.requires_grad and p.grad is None]


def _flatten(value: object) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _flatten(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _flatten(item)


def _rank_info(launch: Launch, device: torch.device) -> dict[str, object]:
    return {
        "rank": launch.rank,
        "local_rank": launch.local_rank,
        "host": socket.gethostname(),
        "device": device_name(device),
    }


def _quiet_other_ranks(rank: int) -> None:
    """Ranks other than 0 log only warnings and errors, each line prefixed with 'rank N: '."""
    if rank == 0:
        return
    root = logging.getLogger()
    root.setLevel(max(root.level, logging.WARNING))
    prefix = f"rank {rank}: "

    class _Prefix(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if not str(record.msg).startswith(prefix):
                record.msg = prefix + str(record.msg)
            return True

    for handler in root.handlers:
        handler.addFilter(_Prefix())


def _first_line(exc: BaseException) -> str:
    """The message's first line, without the C++ source location gloo and NCCL put in front."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", line)
