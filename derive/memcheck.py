"""Memory checked before a run: a size that cannot fit is bad input, refused before anything is written.

The estimates are lower bounds (the tensors a run must hold at once, nothing else), so a run that is
refused could not have finished; one that passes may still be tight.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from derive.errors import UserError
from derive.models.memory import recomputed_blocks

FLOAT = 4  # bytes of a float32


def available_bytes(device: torch.device) -> int | None:
    """Memory free for a new run on `device` (CUDA: free device memory; CPU: MemAvailable), or None."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def gib(size: float) -> str:
    return f"{size / 2**30:.1f} GiB"


def check_fits(needed: int, device: torch.device, what: str, hint: str) -> None:
    """UserError when `needed` bytes exceed the memory available on `device` (unknown: no check)."""
    free = available_bytes(device)
    if free is not None and needed > free:
        raise UserError(
            f"{what} needs at least {gib(needed)} of memory, but {gib(free)} is available on "
            f"{device.type}; {hint}"
        )


def simulation_bytes(
    samples: int, dim: int, depths: tuple[int, ...], batch: int, optimizer: str
) -> int:
    """A lower bound on a simulation's memory: the data (z₀ and f), then the largest run's weights
    with their gradients and optimizer state, and two saved activations per layer of a batch."""
    data = 2 * samples * dim * FLOAT
    states = 4 if optimizer == "adam" else 3  # weight, gradient, and Adam's two moments / momentum
    run = max(depth * (states * dim * dim + 2 * batch * dim) * FLOAT for depth in depths)
    return data + run


def activation_bytes_per_image(model: nn.Module, image: tuple[int, ...] = (3, 32, 32)) -> int:
    """Bytes of the outputs of every leaf module for one image (what backward keeps, at least).

    Of the blocks that `--memory checkpoint|reversible` recomputes in backward
    (derive.models.memory), only the largest counts: backward holds one of them at a time.
    """

    blocks = recomputed_blocks(model)
    owner = {id(m): i for i, block in enumerate(blocks) for m in block.modules()}
    total = 0
    recomputed = [0] * len(blocks)

    def count(module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            size = output.numel() * output.element_size()
            if id(module) in owner:
                recomputed[owner[id(module)]] += size
            else:
                total += size

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *image)))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total + max(recomputed, default=0)


def training_bytes(
    model: nn.Module, batch_size: int, data_bytes: int, image: tuple[int, ...] = (3, 32, 32)
) -> int:
    """A lower bound on `derive train`'s memory: the images held in memory, the weights with gradient
    and momentum, and one batch's activations (of `image`-shaped inputs)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return data_bytes + 3 * weights + batch_size * activation_bytes_per_image(model, image)
