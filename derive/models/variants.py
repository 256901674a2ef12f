"""Variants of a built network that the stability study compares with the papers' recipe (issue 12).

Each is a `derive train` option, off by default:
- `use_projection_shortcuts`: every parameter-free shortcut "A" (subsample + zero-pad, He et al.'s
  CIFAR ResNets) becomes shortcut "B" (1×1 convolution with stride + BN);
- `torch_default_init`: PyTorch's own initialisation (`reset_parameters`: U(±1/√fan_in)-scaled
  Kaiming-uniform with a = √5) instead of the papers' He-normal (fan-out) convolutions or Xavier
  classifier.
They act on the module tree, so they work on any network that has such modules (the zoo and the
files `derive network` writes); the generated code itself is never changed.
"""

from __future__ import annotations

from torch import nn

from derive.errors import UserError
from derive.models.branches import PadShortcut, ProjectionShortcut


def use_projection_shortcuts(model: nn.Module) -> int:
    """Replace each PadShortcut by a ProjectionShortcut of the same channels and stride, in place.

    Returns how many were replaced; UserError if the model has none (the option would do nothing).
    """
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, PadShortcut):
                in_channels = child.in_channels
                setattr(
                    parent,
                    name,
                    ProjectionShortcut(in_channels, in_channels + child.extra, child.stride),
                )
                replaced += 1
    if not replaced:
        raise UserError(
            "--shortcut projection: the model has no zero-pad shortcut (A) to replace; "
            "it applies to the CIFAR ResNet-shaped networks (resnet*, hbnet*, ...)"
        )
    return replaced


def torch_default_init(model: nn.Module, convs: bool, linears: bool) -> int:
    """Re-initialise convolutions and/or linear layers with PyTorch's defaults; returns how many."""
    count = 0
    for module in model.modules():
        if (convs and isinstance(module, nn.Conv2d)) or (linears and isinstance(module, nn.Linear)):
            module.reset_parameters()
            count += 1
    return count
