"""Networks built for their shapes only: on the meta device, with torch.nn.init's initialisers
skipped.

A meta tensor has a shape and no values, so an initialiser cannot change anything a test of keys,
shapes, parameter counts or multiply-adds reads; on the meta device each one still runs through
PyTorch's Python reference kernels, which made building the zoo's largest networks the longest part
of those tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from derive.models import create_model

INITIALISERS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "xavier_uniform_",
    "xavier_normal_",
)


def _unchanged(tensor: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
    return tensor


@contextlib.contextmanager
def shapes_only() -> Iterator[None]:
    """Modules built in the block live on the meta device and skip torch.nn.init's initialisers."""
    saved = {name: getattr(nn.init, name) for name in INITIALISERS}
    try:
        for name in INITIALISERS:
            setattr(nn.init, name, _unchanged)
        with torch.device("meta"):
            yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


def meta_model(name: str, **options: object) -> nn.Module:
    """create_model(name, **options) for its shapes only (see shapes_only)."""
    with shapes_only():
        return create_model(name, **options)
