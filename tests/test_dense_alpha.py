"""What the dense form's α does: a weight per T-term without the bottleneck, a mixing ratio with it.

αʲ scales source j's channels at the input of T's first convolution. Without the bottleneck
(DenseNet-40, AGDNet-40) the T-term is Σⱼ αʲTʲ(zⱼ) and scales with α; with it (DenseNet-121,
AGDNet-121) the BN after the 1×1 convolution normalises the α-weighted sum, so in training mode
scaling every α leaves the output (nearly) unchanged while the ratios between the αʲ still matter.
"""

from __future__ import annotations

import ast

import pytest
import torch

from derive.codegen.loader import load_generated

IN, GROWTH, LAYERS = 16, 8, 4


def _new_features(bottleneck: bool, alpha: list[torch.Tensor] | float) -> torch.Tensor:
    """z₁ … z_K of a training-mode AGD dense stage whose α is the algorithm's times `alpha`."""
    module = load_generated("nesterov2_conv")
    torch.manual_seed(0)
    width = 4 * GROWTH if bottleneck else None
    units = [module.DenseUnit(IN + k * GROWTH, GROWTH, width) for k in range(LAYERS)]
    coefficients = []
    for k in range(LAYERS):
        values = module.block_coefficients(k)
        factor = alpha if isinstance(alpha, float) else alpha[k]
        scaled = torch.tensor(values["alpha"], dtype=torch.float64) * factor
        coefficients.append({"alpha": scaled.tolist(), "state": values["state"]})
    stage = module.Stage(units, IN, GROWTH, coefficients, modes={"beta": "pruned"})
    stage.train()
    x = torch.randn(8, IN, 8, 8, generator=torch.Generator().manual_seed(1))
    return stage(x)[:, IN:].detach()


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def test_without_the_bottleneck_the_t_term_scales_with_alpha() -> None:
    base = _new_features(False, 1.0)
    assert _relative(_new_features(False, 3.0), 3 * base) < 1e-3
    assert _relative(_new_features(False, 3.0), base) > 1.0


def test_with_the_bottleneck_bn_normalises_the_size_of_alpha_away() -> None:
    base = _new_features(True, 1.0)
    tripled = _new_features(True, 3.0)
    assert _relative(tripled, base) < 1e-3  # BN's ε is all that is left of the factor
    assert _relative(tripled, 3 * base) > 0.5
    # the ratios between the sources still matter: scale the newest source's α alone
    newest = [torch.ones(k + 1, dtype=torch.float64) for k in range(LAYERS)]
    for weights in newest[1:]:
        weights[-1] = 3.0
    assert _relative(_new_features(True, newest), base) > 0.05


@pytest.mark.parametrize("claim", ["T′ₖ(Σⱼ αʲ·Cⱼ(zⱼ))", "only the ratios between the αʲ matter"])
def test_the_generated_module_states_what_the_bottleneck_block_computes(claim: str) -> None:
    module = load_generated("nesterov2_conv")
    with open(module.__file__, encoding="utf-8") as source:
        docstring = ast.get_docstring(ast.parse(source.read())) or ""
    assert claim in docstring
