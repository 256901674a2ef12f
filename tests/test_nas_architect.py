"""The architect: DARTS's toy bilevel problem, the finite-difference HVP against double backward, w'."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from train_fixtures import single_thread  # noqa: F401

from derive.nas import build_supernet
from derive.nas.architect import Architect


class Toy(nn.Module):
    """DARTS Figure 2: L_train = w² − 2αw + α², L_val = αw − 2α + 1; x = 0 selects train, 1 val."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(-2.0, dtype=torch.float64))
        self.alpha = nn.Parameter(torch.tensor(2.0, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, a = self.w, self.alpha
        return (1 - x) * (w * w - 2 * a * w + a * a) + x * (a * w - 2 * a + 1)


# steps: each case is within 1e-12 of its fixed point after 510, 265 and 345 steps (both iterates
# contract geometrically), so these counts decide the 1e-9 check as any longer run would
@pytest.mark.parametrize(
    ("order", "xi", "alpha", "steps"),
    [(1, 0.5, 2.0, 700), (2, 0.5, 1.0, 400), (2, 0.25, 4 / 3, 500)],
)
def test_toy_bilevel_fixed_points(order: int, xi: float, alpha: float, steps: int) -> None:
    """First order stops at (2, 2); second order at α = 2/(1 + 2ξ), derived by hand.

    Train loss (w − α)², validation loss αw − 2α + 1. Weights settle at w = α. First order:
    ∂L_val/∂α = w − 2 = 0, so α = 2. Second order: w' = w − 2ξ(w − α), and
    d/dα L_val(w', α) = w' + 2ξα − 2 = α(1 + 2ξ) − 2 at w = α, so α = 2/(1 + 2ξ).
    """
    model = Toy()
    weight_opt = torch.optim.SGD([model.w], lr=xi)
    arch_opt = torch.optim.SGD([model.alpha], lr=0.05)
    architect = Architect(
        model, [model.alpha], arch_opt, weight_opt, order, criterion=lambda out, _: out
    )
    train = (torch.tensor(0.0, dtype=torch.float64), torch.tensor(0))
    val = (torch.tensor(1.0, dtype=torch.float64), torch.tensor(0))
    for _ in range(steps):
        architect.step(train, val, xi)
        weight_opt.zero_grad()
        model(train[0]).backward()
        weight_opt.step()
    assert model.alpha.item() == pytest.approx(alpha, abs=1e-9)
    assert model.w.item() == pytest.approx(alpha, abs=1e-9)  # the weight step makes w = α


def test_toy_second_order_gradient_at_the_start_point() -> None:
    """At (α, w) = (2, −2), ξ = 0.5: w' = −2 − 0.5(−4 − 4) = 2, ∂α = (w' − 2) + 2ξα = 2."""
    model = Toy()
    opt = torch.optim.SGD([model.w], lr=0.5)
    architect = Architect(model, [model.alpha], opt, opt, 2, criterion=lambda out, _: out)
    grads, _ = architect.gradient(
        (torch.tensor(0.0, dtype=torch.float64), None),
        (torch.tensor(1.0, dtype=torch.float64), None),
        0.5,
    )
    assert float(grads[0]) == pytest.approx(2.0, abs=1e-9)


SMOOTH_OPS = (
    "none",
    "avg_pool_3x3",
    "skip_connect",
    "neg_skip_connect",
    "sep_conv_3x3",
    "dil_conv_3x3",
)


def _smooth(module: nn.Module) -> None:
    """ReLU → softplus everywhere: a finite difference across a ReLU kink measures a jump, not a
    second derivative, so the HVP check runs on a twice-differentiable supernet."""
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.Softplus(beta=2.0))
        else:
            _smooth(child)


def _tiny(space: str = "agd", smooth: bool = False) -> tuple[nn.Module, tuple, tuple]:
    torch.manual_seed(0)
    ops = SMOOTH_OPS if smooth else None
    net = build_supernet(space, channels=4, cells=3, alpha_init="randn", ops=ops).double()
    if smooth:
        _smooth(net)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (4,), generator=gen)
    xv = torch.randn(4, 3, 8, 8, generator=gen, dtype=torch.float64)
    yv = torch.randint(0, 10, (4,), generator=gen)
    return net, (x, y), (xv, yv)


def test_finite_difference_hvp_matches_double_backward() -> None:
    net, train, _ = _tiny(smooth=True)
    opt = torch.optim.SGD(net.weights(), lr=0.1)
    arch = net.arch_parameters()
    architect = Architect(net, arch, torch.optim.Adam(arch), opt, 2)
    gen = torch.Generator().manual_seed(2)
    v = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in net.weights()]
    approx = architect.finite_difference_hvp(v, train)
    # exact: ∇_α ⟨∇_w L_train(w, α), v⟩ by double backward (buffers copied as the architect does)
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    out = torch.func.functional_call(net, {**dict(net.named_parameters()), **buffers}, (train[0],))
    loss = F.cross_entropy(out, train[1])
    grads = torch.autograd.grad(loss, net.weights(), create_graph=True)
    dot = sum((g * d).sum() for g, d in zip(grads, v, strict=True))
    exact = torch.autograd.grad(dot, arch)
    for a, e in zip(approx, exact, strict=True):
        scale = float(e.abs().max())
        assert scale > 1e-6  # not trivially zero
        assert float((a - e).abs().max()) < 1e-4 * scale


def test_unrolled_weights_are_the_next_sgd_step() -> None:
    """w' equals what torch's SGD (momentum, weight decay) does next, after a first step fills its buffer."""
    net, train, _ = _tiny("heavyball")
    opt = torch.optim.SGD(net.weights(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    architect = Architect(
        net, net.arch_parameters(), torch.optim.Adam(net.arch_parameters()), opt, 2
    )
    for _ in range(2):  # the first step creates the momentum buffers, the second uses them
        buffers = {n: b.clone() for n, b in net.named_buffers()}
        unrolled = architect.unrolled_weights(train, 0.05)
        twin = copy.deepcopy(net)
        twin.load_state_dict({**net.state_dict(), **buffers})
        twin_opt = torch.optim.SGD(twin.weights(), lr=0.05, momentum=0.9, weight_decay=3e-4)
        twin_opt.load_state_dict(opt.state_dict())
        loss = F.cross_entropy(twin(train[0]), train[1])
        twin_opt.zero_grad()
        loss.backward()
        twin_opt.step()
        for (name, w), w_twin in zip(unrolled.items(), twin.weights(), strict=True):
            assert torch.allclose(w, w_twin, rtol=1e-10, atol=1e-12), name
        opt.zero_grad()
        F.cross_entropy(net(train[0]), train[1]).backward()
        opt.step()


@pytest.mark.parametrize("order", [1, 2])
def test_architecture_step_changes_only_the_architecture(order: int) -> None:
    net, train, val = _tiny()
    opt = torch.optim.SGD(net.weights(), lr=0.05, momentum=0.9)
    arch = net.arch_parameters()
    architect = Architect(net, arch, torch.optim.Adam(arch, lr=1e-2), opt, order)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    architect.step(train, val, 0.05)
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, state[k])}
    assert changed == {"alpha_normal", "alpha_reduce", "beta_normal", "beta_reduce"}
    assert all(p.grad is None for p in net.weights())  # no gradient ever written into the weights
