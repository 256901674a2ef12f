"""The architecture step of DARTS (quark0/darts architect.py): first order and the unrolled second order.

First order (SCIS §9.3, DARTS's default): descend ∇_α L_val(w, α).

Second order (`--order 2`, DARTS eq. (7)-(8)): with ξ the current weight learning rate,

    w' = w − ξ(μ·buf + ∇_w L_train(w, α) + λ·w)        (the next SGD step: momentum μ, decay λ)
    ∇_α ≈ ∇_α L_val(w', α) − ξ ∇²_{α,w} L_train(w, α) · ∇_{w'} L_val(w', α),

the Hessian–vector product by a central finite difference, v = ∇_{w'} L_val(w', α),
R = 0.01/‖v‖:  ∇²_{α,w} L_train · v ≈ (∇_α L_train(w + Rv, α) − ∇_α L_train(w − Rv, α)) / (2R).

w', w ± Rv are evaluated through `torch.func.functional_call` on the same module (no model copies),
with private copies of the buffers, so the architecture step changes only α/β: the model's weights,
BN running statistics and the weight optimizer's state are left as they were (the weight step is
the caller's). Gradients are taken with respect to α/β only (`torch.autograd.grad`), never written
into the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.func import functional_call

Batch = tuple[torch.Tensor, torch.Tensor]
Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
HVP_R = 1e-2  # DARTS's r: R = r / ‖v‖


class Architect:
    """Updates `arch` (the model's architecture parameters) with `optimizer` (DARTS: Adam)."""

    def __init__(
        self,
        model: nn.Module,
        arch: list[nn.Parameter],
        optimizer: torch.optim.Optimizer,
        weight_optimizer: torch.optim.Optimizer,
        order: int = 1,
        criterion: Criterion = nn.functional.cross_entropy,
    ) -> None:
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order}")
        self.model, self.arch, self.optimizer = model, arch, optimizer
        self.weight_optimizer, self.order, self.criterion = weight_optimizer, order, criterion
        ids = {id(a) for a in arch}
        self.weights = {n: p for n, p in model.named_parameters() if id(p) not in ids}

    def loss(self, batch: Batch, weights: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """L(w, α) on `batch`, at the model's own weights or at `weights`; buffers are private copies."""
        x, y = batch
        params: dict[str, torch.Tensor] = dict(weights if weights is not None else self.weights)
        params.update({n: b.clone() for n, b in self.model.named_buffers()})
        return self.criterion(functional_call(self.model, params, (x,)), y)

    def _grad_arch(self, loss: torch.Tensor) -> list[torch.Tensor]:
        grads = torch.autograd.grad(loss, self.arch, allow_unused=True)
        return [
            torch.zeros_like(a) if g is None else g for a, g in zip(self.arch, grads, strict=True)
        ]

    def gradient(self, train: Batch, val: Batch, lr: float) -> tuple[list[torch.Tensor], float]:
        """(the architecture gradient of this step, L_val)."""
        if self.order == 1:
            loss = self.loss(val)
            return self._grad_arch(loss), float(loss.detach())
        unrolled = self.unrolled_weights(train, lr)
        loss = self.loss(val, unrolled)
        grads = torch.autograd.grad(loss, self.arch + list(unrolled.values()), allow_unused=True)
        n = len(self.arch)
        direct = [
            torch.zeros_like(a) if g is None else g
            for a, g in zip(self.arch, grads[:n], strict=True)
        ]
        v = [
            torch.zeros_like(w) if g is None else g
            for w, g in zip(unrolled.values(), grads[n:], strict=True)
        ]
        implicit = self.finite_difference_hvp(v, train)
        return [d - lr * h for d, h in zip(direct, implicit, strict=True)], float(loss.detach())

    def step(self, train: Batch, val: Batch, lr: float) -> float:
        """One architecture update; returns the validation loss it saw (at w, or at w' for order 2)."""
        grads, loss = self.gradient(train, val, lr)
        for a, g in zip(self.arch, grads, strict=True):
            a.grad = g.detach()
        self.optimizer.step()
        for a in self.arch:
            a.grad = None
        return loss

    def unrolled_weights(self, train: Batch, lr: float) -> dict[str, torch.Tensor]:
        """w' = w − ξ(μ·buf + ∇_w L_train + λw): the weight optimizer's next step (no clipping, as DARTS)."""
        names = list(self.weights)
        grads = torch.autograd.grad(
            self.loss(train), [self.weights[n] for n in names], allow_unused=True
        )
        group = self.weight_optimizer.param_groups[0]
        momentum, decay = group.get("momentum", 0.0), group.get("weight_decay", 0.0)
        unrolled = {}
        for name, grad in zip(names, grads, strict=True):
            w = self.weights[name].detach()
            step = torch.zeros_like(w) if grad is None else grad.detach()
            buffer = self.weight_optimizer.state.get(self.weights[name], {}).get("momentum_buffer")
            if buffer is not None:
                step = step + momentum * buffer
            step = step + decay * w
            unrolled[name] = (w - lr * step).requires_grad_()
        return unrolled

    def finite_difference_hvp(self, v: list[torch.Tensor], train: Batch) -> list[torch.Tensor]:
        """∇²_{α,w} L_train(w, α)·v by DARTS's central difference with R = 0.01/‖v‖."""
        norm = torch.sqrt(sum((t.double() ** 2).sum() for t in v))  # type: ignore[arg-type]
        if float(norm) == 0.0:
            return [torch.zeros_like(a) for a in self.arch]
        radius = HVP_R / float(norm)
        shifted = []
        for sign in (1.0, -1.0):
            weights = {
                n: w.detach() + sign * radius * d
                for (n, w), d in zip(self.weights.items(), v, strict=True)
            }
            shifted.append(self._grad_arch(self.loss(train, weights)))
        return [(p - m) / (2 * radius) for p, m in zip(*shifted, strict=True)]


__all__ = ["HVP_R", "Architect"]
