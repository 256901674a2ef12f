"""The multi-stream blocks' fused update node (`_updates` / `_FixedUpdates` in the generated conv
modules) against autograd run on the same sums written out term by term."""

from __future__ import annotations

import pytest
import torch

from derive.codegen.loader import load_generated

PROGRAM = (
    ((-0.1, 0), (0.1, 1), (0.9, 2)),
    ((0.3, 0), (0.7, 1), (-0.7, 3)),
    ((1.0, 3), (-1.0, 4), (0.5, 0)),
)
"""Three updates over three sources; the second and third read earlier updates (indices 3, 4)."""


def written_out(sources: list[torch.Tensor]) -> list[torch.Tensor]:
    """The updates of PROGRAM as plain sums of products, each term its own operation."""
    values = list(sources)
    for terms in PROGRAM:
        total = torch.zeros_like(sources[0])
        for c, i in terms:
            total = total + c * values[i]
        values.append(total)
    return values[len(sources) :]


def weighted(
    values: tuple[torch.Tensor, ...] | list[torch.Tensor], weights: list[torch.Tensor]
) -> torch.Tensor:
    """Σ ⟨v, w⟩: a scalar whose gradient sends a different weight to every output."""
    return sum(((v * w).sum() for v, w in zip(values, weights, strict=True)), torch.tensor(0.0))


def sources(requires_grad: tuple[bool, ...] = (True, True, True)) -> list[torch.Tensor]:
    """Three seeded float64 sources of one shape, each requiring a gradient or not."""
    generator = torch.Generator().manual_seed(0)
    return [
        torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=generator).requires_grad_(flag)
        for flag in requires_grad
    ]


@pytest.mark.parametrize("module", ["qhm_conv", "heavyball_velocity_conv", "extragradient_conv"])
def test_fused_updates_give_the_written_out_values_and_gradients(module: str) -> None:
    updates = load_generated(module)._updates
    given = sources()
    fused = updates(given, *PROGRAM)
    plain = written_out(given)
    weights = [torch.randn_like(v) for v in plain]
    fused_grads = torch.autograd.grad(weighted(fused, weights), given)
    plain_grads = torch.autograd.grad(weighted(plain, weights), given)
    for f, p in zip([*fused, *fused_grads], [*plain, *plain_grads], strict=True):
        torch.testing.assert_close(f, p, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda *s: updates(s, *PROGRAM), given)
    assert torch.autograd.gradgradcheck(lambda *s: updates(s, *PROGRAM), given)


def test_fused_updates_with_a_constant_source_and_an_unused_output() -> None:
    updates = load_generated("qhm_conv")._updates
    given = sources((True, False, True))
    fused = updates(given, *PROGRAM)
    plain = written_out(given)
    wanted = [given[0], given[2]]
    fused_grads = torch.autograd.grad(fused[1].sum(), wanted)
    plain_grads = torch.autograd.grad(plain[1].sum(), wanted)
    for f, p in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(f, p, rtol=1e-12, atol=1e-12)


def test_learnable_and_pruned_coefficients_take_the_term_by_term_path() -> None:
    updates = load_generated("qhm_conv")._updates
    given = sources()
    learnable = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    (new,) = updates(given, ((-0.1, 0), (None, 1), (learnable, 2)))
    torch.testing.assert_close(new, -0.1 * given[0] + 0.9 * given[2], rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(new.sum(), [learnable])
    torch.testing.assert_close(grad, given[2].sum(), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="pruned"):
        updates(given, ((None, 0), (None, 1)))


def test_mixed_precision_sources_promote_as_the_term_by_term_sums_do() -> None:
    updates = load_generated("qhm_conv")._updates
    given = [s.detach().float().requires_grad_() for s in sources()]
    for i in (0, 1):  # T's output and a state in bfloat16 (autocast), the third source float32
        given[i] = given[i].detach().bfloat16().requires_grad_()
    fused = updates(given, *PROGRAM)
    plain = written_out(given)
    assert [v.dtype for v in fused] == [v.dtype for v in plain] == [torch.float32] * 3
    weights = [torch.randn_like(v) for v in plain]
    fused_grads = torch.autograd.grad(weighted(fused, weights), given)
    plain_grads = torch.autograd.grad(weighted(plain, weights), given)
    for f, p in zip([*fused, *fused_grads], [*plain, *plain_grads], strict=True):
        assert f.dtype == p.dtype
        torch.testing.assert_close(f, p, rtol=1e-2, atol=1e-2)
