"""Variants of a built network that the stability study compares with the papers' recipe.

Each is a `derive train` option, off by default:
- `use_projection_shortcuts`: every parameter-free shortcut "A" (subsample + zero-pad, He et al.'s
  CIFAR ResNets) becomes shortcut "B" (1×1 convolution with stride + BN);
- `paper_init` is the papers' own initialisation, which the generated networks apply when built;
  `derive train` applies it again after any variant (and to any model file) unless told not to;
- `torch_default_init`: PyTorch's own initialisation (`reset_parameters`: U(±1/√fan_in)-scaled
  Kaiming-uniform with a = √5) instead of the papers' He-normal (fan-out) convolutions or Xavier
  classifier.
They act on the module tree, so they work on any network that has such modules (the zoo and the
files `derive network` writes); the generated code itself is never changed.
"""

from __future__ import annotations

import sys

from torch import nn

from derive.errors import UserError


def is_zero_pad_shortcut(module: nn.Module) -> bool:
    """Whether `module` is a generated network's shortcut "A" (its class sets `zero_pad_shortcut`)."""
    return getattr(type(module), "zero_pad_shortcut", False) is True


def projection_shortcut(pad: nn.Module) -> nn.Module:
    """Shortcut "B" with the channels and stride of the shortcut "A" `pad`: the ProjectionShortcut
    of the module that defines `pad` (1×1 convolution with stride, then BN), or the same layers."""
    in_channels, out_channels = pad.in_channels, pad.in_channels + pad.extra
    source = sys.modules.get(type(pad).__module__)
    make = getattr(source, "ProjectionShortcut", None)
    if make is not None:
        return make(in_channels, out_channels, pad.stride)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=pad.stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


def use_projection_shortcuts(model: nn.Module) -> int:
    """Replace each shortcut "A" (PadShortcut) by shortcut "B" of the same channels and stride, in
    place. Returns how many were replaced; UserError if the model has none (it would do nothing).
    """
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if is_zero_pad_shortcut(child):
                setattr(parent, name, projection_shortcut(child))
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


def paper_init(model: nn.Module) -> nn.Module:
    """The papers' initialisation (SCIS appendix D), in place: He-normal (fan_out, ReLU)
    convolutions, Xavier-uniform linear layers, BN weights 1 and biases 0 (what the generated
    networks' own `paper_init` does)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)):
            if module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
    return model
