"""How a training step keeps its activations: `set_memory(model, "standard" | "checkpoint" | "reversible")`.

- standard: plain autograd; every block stores what its backward needs (grows with depth).
- checkpoint: `torch.utils.checkpoint` (non-reentrant) around every block of derive's generated
  stages (lagged, two-path and dense alike): a block keeps only its inputs and runs its forward
  again in backward. Any model built from the generated code.
- reversible: one `torch.autograd.Function` per stage of an *invertible* lagged form (the
  pre-activation HBNets, `prehbnet*`). Its forward runs blocks 1 … K−1 without a graph and keeps
  only the newest states z_K, z_{K−1}; its backward walks the blocks from the last down, recovering
  each block's oldest input with the generated inverse step, z_{k−1} = (z_{k+1} − T_k(z_k) −
  β₁z_k)/β₂, re-running T_k once and back-propagating through it. The block's sum Σ c·z is
  not formed again: where its weights c are constants its gradients are c·g, carried unscaled
  into the next sum (in place), and only learnable weights go through autograd. Block 0 (which reads the stage
  input, carries the stride and the shortcut) stays in plain autograd, so a stage also keeps its
  input: O(stages) activations instead of O(blocks). The gradients equal standard autograd's up
  to the rounding of the reconstruction (docs/memory.md gives the measured size).

What the recomputation must not change, in both recomputing modes:
- BatchNorm: a recomputed forward runs in training mode with the same batch statistics, and the
  running statistics and batch counter it updates are written back to their values before it
  (`frozen_batchnorm`), so the buffers after a step are those of the standard path.
- Randomness: checkpoint saves the CPU and CUDA RNG states before each block and replays them
  inside `torch.random.fork_rng` (as torch.utils.checkpoint does), so dropout or drop-path draw
  the same masks and the global RNG is left as the standard path leaves it. Reversible does the
  same for the blocks that drew random numbers in forward (the state after a block differs from
  the state before it); a block that drew none keeps no state and replays nothing.
- Tensors: the reversible backward re-runs each block with the parameter and buffer tensors its
  forward used (so it also differentiates through `torch.func.functional_call`), and refuses, as
  autograd does, parameters modified in place in between.
- Autocast: the reversible backward runs T under the autocast state its forward saw. The z stream
  (the sums, the two kept states and the reconstruction) is float32 under autocast: T runs in
  bf16/fp16, but the inverse subtracts nearly equal numbers, and in a 16-bit stream its error would
  grow with depth (bench/bench_memory.py measures it).

The model's modules and state_dict do not change (the mode replaces `forward` on the chosen
instances only), so a checkpoint trained in one mode resumes in another.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType

import torch
import torch.utils.checkpoint
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.modules.batchnorm import _BatchNorm

from derive.errors import UserError
from derive.modelargs import MEMORY_MODES

_LOW_PRECISION = (torch.float16, torch.bfloat16)
_HINT = (
    "the pre-activation HBNets (prehbnet20/56/110/164/1001) are invertible; "
    "memory 'checkpoint' works for any model built from the generated code"
)


def check_mode(mode: object) -> str:
    """`mode` if it is one of MEMORY_MODES; UserError otherwise."""
    if mode not in MEMORY_MODES:
        raise UserError(f"memory must be one of {', '.join(MEMORY_MODES)}, got {mode!r}")
    return mode  # type: ignore[return-value]


def set_memory(model: nn.Module, mode: str, *, name: str = "model") -> nn.Module:
    """Make `model`'s training steps keep activations as `mode` says (in place; returns `model`).

    UserError, naming the reason, when the model cannot run that way (nothing is changed then).
    """
    check_mode(mode)
    if mode == "checkpoint":
        targets = checkpoint_units(model)
        if not targets:
            raise UserError(
                f"{name}: memory 'checkpoint' found no blocks to recompute (it checkpoints the "
                "blocks of derive's generated stages, and this model has none)"
            )
        runner: Callable[..., torch.Tensor] = _checkpointed_forward
    elif mode == "reversible":
        targets = reversible_stages(model, name)
        runner = _reversible_forward
    else:
        targets, runner = [], _checkpointed_forward
    _clear(model)
    for module in targets:
        module.forward = functools.partial(runner, module)
        module._derive_memory = mode
    return model


def memory_mode(model: nn.Module) -> str:
    """The mode `set_memory` last gave `model` ("standard" if none)."""
    for module in model.modules():
        mode = module.__dict__.get("_derive_memory")
        if mode:
            return mode
    return "standard"


def _clear(model: nn.Module) -> None:
    for module in model.modules():
        if module.__dict__.pop("_derive_memory", None):
            module.__dict__.pop("forward", None)


# ------------------------------------------------------------------ which modules


def _generated_module(module: nn.Module) -> ModuleType | None:
    """The generated conv module (generated/ALGO_conv.py or a file of `derive network`) defining `module`'s class."""
    source = sys.modules.get(type(module).__module__)
    if source is None or not hasattr(source, "FORM") or not hasattr(source, "Stage"):
        return None
    return source


def _stages(model: nn.Module) -> list[tuple[nn.Module, ModuleType]]:
    found = []
    for module in model.modules():
        source = _generated_module(module)
        if source is not None and isinstance(module, source.Stage):
            found.append((module, source))
    return found


def recomputed_blocks(model: nn.Module) -> list[nn.Module]:
    """The blocks whose activations the mode set on `model` recomputes instead of keeping."""
    blocks: list[nn.Module] = []
    for module in model.modules():
        mode = module.__dict__.get("_derive_memory")
        if mode == "checkpoint":
            blocks.append(module)
        elif mode == "reversible":
            blocks += list(module.blocks)[1:]
    return blocks


def checkpoint_units(model: nn.Module) -> list[nn.Module]:
    """The blocks `checkpoint` recomputes: lagged and two-path blocks, dense units."""
    units: list[nn.Module] = []
    for stage, source in _stages(model):
        if source.FORM == "dense":
            units += list(stage.units)
        else:
            units += list(stage.blocks)
    return units


def reversible_stages(model: nn.Module, name: str = "model") -> list[nn.Module]:
    """The stages `reversible` runs backwards; UserError naming the first reason it cannot."""
    stages = _stages(model)
    if not stages:
        raise UserError(
            f"{name}: not invertible: it has no stages of derive's generated conv code; {_HINT}"
        )
    for number, (stage, source) in enumerate(stages, start=1):
        if not getattr(source, "INVERTIBLE", False):
            why = getattr(source, "INVERTIBILITY", "generated before invertibility was decided")
            why = why.removeprefix("not invertible: ")
            raise UserError(
                f"{name}: not invertible: {source.ALGORITHM}'s {source.FORM} form: {why}; {_HINT}"
            )
        for k, block in enumerate(stage.blocks):
            reason = block.not_invertible_because() if k else None  # block 0 stays in autograd
            if reason:
                raise UserError(
                    f"{name}: not invertible: {reason} (block {k} of stage {number}); {_HINT}"
                )
    return [stage for stage, _ in stages]


# ------------------------------------------------------------------ recomputation state


@contextlib.contextmanager
def frozen_batchnorm(module: nn.Module) -> Iterator[None]:
    """BatchNorm in `module` may run (and update its buffers); on exit the buffers are as before.

    A recomputed forward must normalize exactly as the first one did (training mode: by the batch's
    statistics) and save the same tensors for backward, so BN runs unchanged; its running_mean,
    running_var and num_batches_tracked are copied before and written back after, so the step
    updates them once, as the standard path does.
    """
    saved = [
        (buffer, buffer.clone())
        for m in module.modules()
        if isinstance(m, _BatchNorm) and m.training and m.track_running_stats
        for buffer in (m.running_mean, m.running_var, m.num_batches_tracked)
        if buffer is not None
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, before in saved:
                buffer.copy_(before)


@dataclass
class RngState:
    """The CPU and CUDA RNG states before a block ran, to replay its dropout in a recomputation."""

    cpu: torch.Tensor
    devices: list[int]
    device_states: list[torch.Tensor]

    @classmethod
    def capture(cls, tensors: Sequence[torch.Tensor]) -> RngState:
        devices, states = torch.utils.checkpoint.get_device_states(*tensors)
        return cls(torch.get_rng_state(), devices, states)

    def same_as(self, other: RngState) -> bool:
        """Whether the two states are equal (no random numbers were drawn in between)."""
        return (
            self.devices == other.devices
            and torch.equal(self.cpu, other.cpu)
            and all(map(torch.equal, self.device_states, other.device_states))
        )

    @contextlib.contextmanager
    def replayed(self) -> Iterator[None]:
        """Inside: the saved states; after: the RNG as it was before (torch.random.fork_rng)."""
        with torch.random.fork_rng(devices=self.devices, enabled=True):
            torch.set_rng_state(self.cpu)
            if self.devices:
                torch.utils.checkpoint.set_device_states(self.devices, self.device_states)
            yield


@dataclass
class AutocastState:
    """The autocast setting a forward ran under, to run its recomputation the same way."""

    device_type: str
    enabled: bool
    dtype: torch.dtype
    cache_enabled: bool

    @classmethod
    def capture(cls, device_type: str) -> AutocastState:
        return cls(
            device_type,
            torch.is_autocast_enabled(device_type),
            torch.get_autocast_dtype(device_type),
            torch.is_autocast_cache_enabled(),
        )

    def restored(self) -> contextlib.AbstractContextManager[None]:
        return torch.autocast(
            device_type=self.device_type,
            dtype=self.dtype,
            enabled=self.enabled,
            cache_enabled=self.cache_enabled,
        )


# ------------------------------------------------------------------ checkpoint


def _checkpointed_forward(unit: nn.Module, *args: object, **kwargs: object) -> torch.Tensor:
    """`unit`'s own forward under torch.utils.checkpoint, its recomputation with BN frozen."""
    forward = type(unit).forward.__get__(unit)
    if not torch.is_grad_enabled():
        return forward(*args, **kwargs)
    # The recomputation sees the arguments as they are in backward: copy the history lists a
    # stage keeps appending to (the two-path and dense forms do), so it sees them as they were.
    args = tuple(list(a) if isinstance(a, list) else a for a in args)
    if torch.compiler.is_compiling():
        # Traced, the recomputation is the partitioner's: it re-runs no mutating op (no BN
        # update), and dynamo accepts no context_fn of ours.
        return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return torch.utils.checkpoint.checkpoint(
        forward,
        *args,
        use_reentrant=False,
        preserve_rng_state=True,
        context_fn=lambda: (contextlib.nullcontext(), frozen_batchnorm(unit)),
        **kwargs,
    )


# ------------------------------------------------------------------ reversible


Binding = tuple[nn.Module, str, str, torch.Tensor]
"""(module, "_parameters" or "_buffers", name, tensor): one tensor a block computed with."""


@dataclass
class _Plan:
    """The blocks one reversible Function runs, the tensors they ran with, where the parameters
    sit among the Function's inputs, and how each block combines T with its history."""

    blocks: list[nn.Module]
    lags: int
    params: list[torch.Tensor] = field(default_factory=list)
    slots: list[list[int]] = field(default_factory=list)  # per block: indices into params
    bindings: list[list[Binding]] = field(default_factory=list)  # per block
    versions: list[int] = field(default_factory=list)  # of params, at forward
    weights: list[list[float] | None] = field(default_factory=list)  # per block: combine_weights

    def __post_init__(self) -> None:
        index: dict[int, int] = {}
        for block in self.blocks:
            bound = [
                (m, kind, name, t)
                for m in block.modules()
                for kind in ("_parameters", "_buffers")
                for name, t in getattr(m, kind).items()
                if t is not None
            ]
            self.bindings.append(bound)
            slots = []
            for _, kind, _, t in bound:
                if kind != "_parameters" or not t.requires_grad:
                    continue
                if id(t) not in index:
                    index[id(t)] = len(self.params)
                    self.params.append(t)
                    self.versions.append(t._version)
                slots.append(index[id(t)])
            self.slots.append(slots)
            self.weights.append(combine_weights(block, self.lags))

    @contextlib.contextmanager
    def bound(self, index: int) -> Iterator[None]:
        """Block `index` holds the tensors it ran with in forward (torch.func.functional_call
        swaps them only for the forward call), as they were then."""
        for slot in self.slots[index]:
            if self.params[slot]._version != self.versions[slot]:
                raise RuntimeError(
                    "a parameter of a reversible stage was modified in place between its forward "
                    "and backward (as in plain autograd, that is an error)"
                )
        current = [
            (m, kind, name, getattr(m, kind)[name]) for m, kind, name, _ in self.bindings[index]
        ]
        if all(
            now is then for (*_, now), (*_, then) in zip(current, self.bindings[index], strict=True)
        ):
            yield  # the usual case: nothing was swapped since forward
            return
        for m, kind, name, t in self.bindings[index]:
            getattr(m, kind)[name] = t
        try:
            yield
        finally:
            for m, kind, name, t in current:
                getattr(m, kind)[name] = t


def combine_weights(block: nn.Module, lags: int) -> list[float] | None:
    """[c_T, c_0, …, c_(L−1)] when `block.combine(t, history)` is Σ c·z with constant c; else None.

    Found by running `combine` on Python floats (unit vectors, then one mixed probe that checks
    linearity). None where the block has parameters of its own (learnable coefficients, whose
    gradients need autograd) or `combine` does not take plain numbers.
    """
    if next(block.parameters(recurse=False), None) is not None:
        return None

    def combine(values: Sequence[float]) -> object:
        return block.combine(values[0], list(values[1:]))

    try:
        units = [combine([float(i == j) for j in range(lags + 1)]) for i in range(lags + 1)]
        probe = [0.5 + j for j in range(lags + 1)]
        mixed = combine(probe)
    except (TypeError, ValueError, AttributeError, RuntimeError):
        return None
    if not all(type(u) is float for u in units) or type(mixed) is not float:
        return None
    expected = sum(c * v for c, v in zip(units, probe, strict=True))
    if abs(mixed - expected) > 1e-9 * max(1.0, abs(expected)):
        return None
    return units  # type: ignore[return-value]


def _reversible_forward(stage: nn.Module, stage_input: torch.Tensor) -> torch.Tensor:
    """The stage's forward, with blocks 1 … K−1 in one reversible Function when a graph is built."""
    blocks = list(stage.blocks)
    if len(blocks) < 2 or not torch.is_grad_enabled():
        return type(stage).forward(stage, stage_input)
    lags = _generated_module(stage).LAGS  # type: ignore[union-attr]
    z0 = stage.shortcut(stage_input)
    history = [z0] * lags
    history = [blocks[0](history, stage_input), *history[:-1]]
    plan = _Plan(blocks[1:], lags)
    if not plan.params and not any(h.requires_grad for h in history):
        return type(stage).forward(stage, stage_input)
    return stage.readout(_run_reversible(plan, [_stream(h) for h in history]))


@torch.compiler.disable  # the backward calls autograd itself, which dynamo cannot trace
def _run_reversible(plan: _Plan, history: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(_ReversibleBlocks.apply(plan, *history, *plan.params))


def _stream(z: torch.Tensor) -> torch.Tensor:
    """The z stream in float32 under autocast (see the module docstring)."""
    if z.dtype in _LOW_PRECISION and torch.is_autocast_enabled(z.device.type):
        return z.float()
    return z


def _run_blocks(
    blocks: Sequence[nn.Module], history: list[torch.Tensor]
) -> tuple[list[torch.Tensor], list[RngState | None]]:
    """`blocks` run on `history` (the caller builds no graph), and per block the RNG state before
    it where it drew random numbers, None where it drew none (its recomputation replays nothing,
    and no state is kept)."""
    states: list[RngState | None] = []
    before = RngState.capture(history)
    for block in blocks:
        history = [block(history), *history[:-1]]
        after = RngState.capture(history)
        drew = not before.same_as(after)
        states.append(before if drew else None)
        if drew:
            before = after
    return history, states


class _ReversibleBlocks(torch.autograd.Function):
    """z_1 … z_{1−L+1} → z_K … z_{K−L+1} through the plan's blocks, keeping only the outputs."""

    @staticmethod
    def forward(ctx, plan: _Plan, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        history = list(tensors[: plan.lags])
        ctx.plan = plan
        ctx.autocast = AutocastState.capture(history[0].device.type)
        # autograd.Function.forward runs without a graph
        history, ctx.rng = _run_blocks(plan.blocks, history)
        ctx.save_for_backward(*history)
        return tuple(history)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grad_outputs: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        plan: _Plan = ctx.plan
        history = [h.detach() for h in ctx.saved_tensors]  # z_(k+1-l), l = 0 … L−1
        grads: list[Scaled] = [
            (torch.zeros_like(h) if g is None else g, 1.0)
            for g, h in zip(grad_outputs, history, strict=True)
        ]
        param_grads: list[torch.Tensor | None] = [None] * len(plan.params)
        for index in range(len(plan.blocks) - 1, -1, -1):
            rng = ctx.rng[index]
            with (
                plan.bound(index),
                ctx.autocast.restored(),
                rng.replayed() if rng is not None else contextlib.nullcontext(),
                frozen_batchnorm(plan.blocks[index]),
            ):
                # inside frozen_batchnorm: its restore would bump the versions of saved buffers
                history, grads = _block_backward(plan, index, history, grads, param_grads)
        return (None, *(_value(g) for g in grads), *param_grads)


Scaled = tuple[torch.Tensor, float]
"""(x, c): the gradient c·x, kept unmultiplied until it is summed into another (no extra pass)."""


def _value(scaled: Scaled) -> torch.Tensor:
    x, c = scaled
    return x if c == 1.0 else x * c


def _block_backward(
    plan: _Plan,
    index: int,
    history: list[torch.Tensor],
    grads: list[Scaled],
    param_grads: list[torch.Tensor | None],
) -> tuple[list[torch.Tensor], list[Scaled]]:
    """Block `index` backwards: from history[l] = z_(k+1-l) and their gradients to z_(k-l) and
    theirs; adds the block's parameter gradients to `param_grads`.

    T_k(z_k) runs again with a graph, the oldest state comes from the inverse step, and autograd
    differentiates T. Through the combination Σ c·z the gradients are c·g: formed directly where
    the c are constants (`combine_weights`), by autograd through `combine` otherwise (learnable
    coefficients). Nothing of the block outlives the call but the states and gradients returned.
    """
    block, lags, weights = plan.blocks[index], plan.lags, plan.weights[index]
    params = [plan.params[s] for s in plan.slots[index]]
    newer = [h.detach().requires_grad_() for h in history[1:]]  # the leaves of this block
    g, scale = grads[0]
    with torch.enable_grad():
        t = block.transform(newer)
    with torch.no_grad():
        oldest = block.inverse(history, t.detach())
    if weights is None:
        oldest.requires_grad_()
        with torch.enable_grad():
            z = block.combine(t, [*newer, oldest])
        found = torch.autograd.grad(
            z, [*newer, oldest, *params], _value(grads[0]), allow_unused=True
        )
        del z
        steps, scales = list(found[:lags]), [0.0] * lags
    else:
        g_t = _value((g, scale * weights[0]))
        g_t = g_t if g_t.dtype == t.dtype else g_t.to(t.dtype)
        found = torch.autograd.grad(t, [*newer, *params], g_t, allow_unused=True)
        del g_t
        steps, scales = [*found[: lags - 1], None], [scale * c for c in weights[1:]]
    del t  # T's graph is gone; free its output before the next block allocates
    owned = _owned(steps, [x for x, _ in grads])
    for slot, p_grad in zip(plan.slots[index], found[len(found) - len(params) :], strict=True):
        if p_grad is not None:
            now = param_grads[slot]
            param_grads[slot] = p_grad if now is None else now + p_grad
    older = [*grads[1:], (None, 0.0)]
    new_grads = [
        _linear_sum([(steps[lag], 1.0), (g, scales[lag]), older[lag]], owned[lag], like)
        for lag, like in enumerate([*newer, oldest])
    ]
    return [*(h.detach() for h in newer), oldest.detach()], new_grads


def _owned(found: Sequence[torch.Tensor | None], others: Sequence[torch.Tensor]) -> list[bool]:
    """Per tensor of `found` (autograd's results): whether it may be summed into in place, that
    is, no other tensor in play shares its memory."""
    ptrs = [None if t is None else t.untyped_storage().data_ptr() for t in found]
    taken = {x.untyped_storage().data_ptr() for x in others}
    return [p is not None and ptrs.count(p) == 1 and p not in taken for p in ptrs]


def _linear_sum(
    terms: Sequence[tuple[torch.Tensor | None, float]], owned: bool, like: torch.Tensor
) -> Scaled:
    """Σ c·x over the terms (None or c = 0 skipped; zeros like `like` if none is left), in place
    on the first term where `owned` says it may be; a single term is passed on unmultiplied."""
    kept = [(x, c) for x, c in terms if x is not None and c != 0.0]
    if not kept:
        return torch.zeros_like(like), 1.0
    if len(kept) == 1:
        return kept[0]  # type: ignore[return-value]
    (total, c), rest = kept[0], kept[1:]
    if c != 1.0:
        total, owned = total * c, True
    for x, c in rest:
        if owned and total.dtype == torch.promote_types(total.dtype, x.dtype):
            total.add_(x, alpha=c)
        else:
            total, owned = torch.add(total, x, alpha=c), True
    return total, 1.0


def reconstruct(stage: nn.Module, newest: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Run blocks K−1 … 1 of `stage` backwards from history[l] = z_(K−l); return [z_1, z_0, …].

    What the reversible backward recovers, without gradients: the bench compares it with the
    states a standard forward produced (the reconstruction error against depth).
    """
    history = [h.detach() for h in newest]
    blocks = list(stage.blocks)
    with torch.no_grad():
        for block in reversed(blocks[1:]):
            with frozen_batchnorm(block):
                t = block.transform(history[1:])
            history = [*history[1:], block.inverse(history, t)]
    return history


__all__ = [
    "MEMORY_MODES",
    "AutocastState",
    "RngState",
    "check_mode",
    "checkpoint_units",
    "frozen_batchnorm",
    "memory_mode",
    "reconstruct",
    "recomputed_blocks",
    "reversible_stages",
    "set_memory",
]
