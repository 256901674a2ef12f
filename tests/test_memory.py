"""memory='checkpoint' and memory='reversible' against plain autograd (derive/models/memory.py).

Reference: the same network with memory='standard' (plain autograd), same weights, same batch.
Networks are tiny (a few channels, 8×8 or 16×16 inputs) so each test takes a fraction of a second.
Tolerances: float64 rtol 1e-9 (the reconstruction rounds at ~1e-16 per block); float32 see below.
"""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from train_fixtures import single_thread  # noqa: F401

from derive.codegen.loader import load_generated
from derive.codegen.papers import HBNET
from derive.errors import UserError
from derive.models import create_model
from derive.models import memory as memory_module
from derive.models.memory import memory_mode, reconstruct, set_memory

HB = load_generated("heavyball_conv")


def tiny_hbnet(
    depth: int = 20, bottleneck: bool = False, widths=(3, 4, 5), dtype=torch.float64
) -> nn.Module:
    torch.manual_seed(0)
    net = HB.cifar_preact_resnet(depth=depth, bottleneck=bottleneck, widths=widths, **HBNET)
    for m in net.modules():  # BN with non-trivial affine parameters
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.to(dtype)


def batch(dtype=torch.float64, n: int = 4, size: int = 16, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g, dtype=dtype), torch.arange(n) % 10


def step(net: nn.Module, mode: str, x: torch.Tensor, y: torch.Tensor, steps: int = 1):
    """A copy of `net` in `mode` after `steps` SGD steps: (param grads of the last, input grad, copy)."""
    net = set_memory(copy.deepcopy(net), mode).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    for _ in range(steps):
        xx = x.clone().requires_grad_()
        opt.zero_grad()
        F.cross_entropy(net(xx), y).backward()
        grads = {n: p.grad.clone() for n, p in net.named_parameters()}
        opt.step()
    return grads, xx.grad, net


def assert_grads_close(got, ref, rtol: float, scale_atol: float) -> None:
    scale = max(g.abs().max().item() for g in ref.values())
    for name, g in ref.items():
        torch.testing.assert_close(got[name], g, rtol=rtol, atol=scale_atol * scale, msg=name)


@pytest.mark.parametrize("depth,bottleneck", [(20, False), (29, True)])
def test_float64_gradients_of_every_parameter_and_the_input_equal_standard(depth, bottleneck):
    net = tiny_hbnet(depth, bottleneck)
    x, y = batch()
    ref, ref_x, _ = step(net, "standard", x, y)
    rev, rev_x, _ = step(net, "reversible", x, y)
    assert_grads_close(rev, ref, rtol=1e-9, scale_atol=1e-11)
    torch.testing.assert_close(rev_x, ref_x, rtol=1e-9, atol=1e-11 * ref_x.abs().max().item())
    ckpt, ckpt_x, _ = step(net, "checkpoint", x, y)
    assert all(torch.equal(ckpt[n], ref[n]) for n in ref) and torch.equal(ckpt_x, ref_x)


def test_float32_gradients_within_the_stated_tolerance():
    """float32: reversible and standard agree to rtol 1e-4 with atol 1e-5 of the largest gradient,
    and the reversible gradients are as close to the float64 ones as the standard path's are."""
    net = tiny_hbnet(56, dtype=torch.float32)
    x, y = batch(torch.float32)
    ref, _, _ = step(net, "standard", x, y)
    rev, _, _ = step(net, "reversible", x, y)
    assert_grads_close(rev, ref, rtol=1e-4, scale_atol=1e-5)
    exact, _, _ = step(net.double(), "standard", x.double(), y)

    def error(grads):
        return max((grads[n].double() - g).abs().max().item() for n, g in exact.items())

    assert error(rev) <= 2 * error(ref) + 1e-7


def test_gradcheck_on_a_tiny_reversible_stage():
    """Numerical against analytical derivatives with respect to the input and every parameter."""
    torch.manual_seed(0)
    blocks = [HB.Block(HB.PreActBasicBranch(2, 2), HBNET["coefficients"]) for _ in range(4)]
    stage = set_memory(HB.Stage(blocks).double(), "reversible").train()
    names = [n for n, _ in stage.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in stage.parameters())
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)

    def f(x, *values):
        return torch.func.functional_call(stage, dict(zip(names, values, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-6)


def test_batchnorm_buffers_equal_the_standard_paths_after_training_steps():
    net = tiny_hbnet()
    x, y = batch()
    _, _, ref = step(net, "standard", x, y)
    for mode in ("reversible", "checkpoint"):
        _, _, got = step(net, mode, x, y)
        for (name, a), b in zip(got.named_buffers(), ref.buffers(), strict=True):
            assert torch.equal(a, b), (mode, name)
    _, _, ref3 = step(net, "standard", x, y, steps=3)
    _, _, rev3 = step(net, "reversible", x, y, steps=3)
    for (name, a), b in zip(rev3.named_buffers(), ref3.buffers(), strict=True):
        if name.endswith("num_batches_tracked"):
            assert a.item() == b.item() == 3, name
        else:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=name)


def test_without_the_batchnorm_guard_the_buffers_would_be_updated_twice(monkeypatch):
    """The previous test can fail: recomputing with BN unguarded counts the batch twice."""
    monkeypatch.setattr(memory_module, "frozen_batchnorm", lambda module: contextlib.nullcontext())
    net = tiny_hbnet()
    x, y = batch()
    _, _, rev = step(net, "reversible", x, y)
    counts = [b.item() for n, b in rev.named_buffers() if n.endswith("num_batches_tracked")]
    assert max(counts) == 2


class DropoutBranch(nn.Sequential):
    def __init__(self, c: int) -> None:
        super().__init__(
            nn.BatchNorm2d(c), nn.ReLU(), nn.Dropout(0.3), nn.Conv2d(c, c, 3, padding=1)
        )


def dropout_stage() -> nn.Module:
    torch.manual_seed(0)
    blocks = [HB.Block(DropoutBranch(3), {"beta1": 1.0, "beta2": -1.0}) for _ in range(5)]
    return HB.Stage(blocks).double()


def _stage_grads(mode: str, seed: int = 7):
    stage = set_memory(dropout_stage(), mode).train()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x.requires_grad_()
    torch.manual_seed(seed)
    stage(x).square().sum().backward()
    return [p.grad for p in stage.parameters()] + [x.grad], torch.get_rng_state()


def test_dropout_replays_in_the_recomputation():
    ref, ref_rng = _stage_grads("standard")
    for mode in ("reversible", "checkpoint"):
        got, rng = _stage_grads(mode)
        for a, b in zip(got, ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
        assert torch.equal(rng, ref_rng)  # backward leaves the global RNG as standard does


def test_without_the_rng_replay_dropout_would_draw_new_masks(monkeypatch):
    monkeypatch.setattr(memory_module.RngState, "replayed", lambda self: contextlib.nullcontext())
    ref, _ = _stage_grads("standard")
    got, _ = _stage_grads("reversible")
    assert not all(torch.allclose(a, b) for a, b in zip(got, ref, strict=True))


def _reversible_nodes(loss: torch.Tensor) -> list:
    """The backward nodes of the reversible Functions in `loss`'s graph."""
    nodes, seen, todo = [], set(), [loss.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ == "_ReversibleBlocksBackward":
            nodes.append(node)
        todo += [n for n, _ in node.next_functions]
    return nodes


def test_rng_states_are_kept_only_for_blocks_that_draw_random_numbers():
    """No replay (and no 5 KiB state) per deterministic block; one per block with dropout."""
    x, y = batch()
    plain = _reversible_nodes(F.cross_entropy(set_memory(tiny_hbnet(20), "reversible")(x), y))
    assert plain and all(state is None for node in plain for state in node.rng)
    stage = set_memory(dropout_stage(), "reversible").train()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    (node,) = _reversible_nodes(stage(x).sum())
    assert len(node.rng) == 4 and all(state is not None for state in node.rng)


@pytest.mark.parametrize("modes", [{}, {"beta1": "learnable", "beta2": "learnable"}])
def test_gradients_through_the_combination_fixed_and_learnable(modes):
    """β₂ = −0.7 (the inverse divides): constant weights take the direct path (c·g), learnable
    ones autograd through `combine`; both equal plain autograd in float64, coefficients too."""
    torch.manual_seed(0)
    coefficients = {"beta1": 0.9, "beta2": -0.7}
    blocks = [HB.Block(HB.PreActBasicBranch(3, 3), coefficients, modes) for _ in range(5)]
    stage = HB.Stage(blocks).double().train()
    weights = [memory_module.combine_weights(b, HB.LAGS) for b in stage.blocks]
    assert weights == [None] * 5 if modes else [[1.0, 0.9, -0.7]] * 5
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    grads = {}
    for mode in ("standard", "reversible"):
        net = set_memory(copy.deepcopy(stage), mode)
        xx = x.clone().requires_grad_()
        net(xx).square().sum().backward()
        grads[mode] = {n: p.grad for n, p in net.named_parameters()} | {"x": xx.grad}
    assert ("blocks.1.beta2" in grads["standard"]) == bool(modes)
    assert_grads_close(grads["reversible"], grads["standard"], rtol=1e-9, scale_atol=1e-11)


def _saved_bytes(net: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves in one forward (parameters left out)."""
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = net(x).sum()
    loss.backward()
    return sum(storages.values())


def test_reversible_activation_bytes_do_not_grow_with_depth():
    x, _ = batch(torch.float32)
    sizes = {}
    for depth in (20, 56):
        for mode in ("standard", "reversible"):
            net = set_memory(tiny_hbnet(depth, dtype=torch.float32), mode).train()
            sizes[mode, depth] = _saved_bytes(net, x)
    assert sizes["reversible", 56] == sizes["reversible", 20]
    assert sizes["standard", 56] > 2 * sizes["standard", 20]
    assert sizes["reversible", 56] < 0.25 * sizes["standard", 56]


def test_each_reversible_stage_saves_only_its_two_newest_states():
    net = set_memory(tiny_hbnet(20), "reversible").train()
    x, y = batch()
    nodes = _reversible_nodes(F.cross_entropy(net(x), y))
    assert len(nodes) == 3
    assert all(len(node.saved_tensors) == HB.LAGS == 2 for node in nodes)


def test_reconstruction_recovers_the_first_states():
    for dtype, bound in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        net = tiny_hbnet(56, dtype=dtype).train()
        stage = net.stages[1]
        x = torch.randn(4, 3, 16, 16, dtype=dtype)
        with torch.no_grad():
            h = net.stages[0](net.stem(x))
            z0 = stage.shortcut(h)
            history = [z0, z0]
            states = []
            for k, block in enumerate(stage.blocks):
                history = [block(history, h if k == 0 else None), history[0]]
                states.append(history[0])
        z1, z0_back = reconstruct(stage, history)
        scale = max(s.abs().max().item() for s in states)
        assert (z1 - states[0]).abs().max().item() / scale < bound
        assert (z0_back - z0).abs().max().item() / scale < bound


@pytest.mark.parametrize(
    "build,reason",
    [
        (lambda: create_model("hbnet20", memory="reversible"), "ρ = relu after the sum"),
        (lambda: create_model("resnet20", memory="reversible"), "ρ = relu after the sum"),
        (lambda: create_model("preresnet20", memory="reversible"), "β₂ is pruned"),
        (lambda: create_model("cnn56", memory="reversible"), "zₖ enters through T"),
        (lambda: create_model("densenet40", memory="reversible"), "all-history form"),
        (lambda: create_model("dmrnet56", memory="reversible"), "(C5) form"),
        (
            lambda: set_memory(load_generated("nesterov_conv").create_model(), "reversible"),
            "zₖ₋₁ enters through T",
        ),
        (
            lambda: set_memory(load_generated("triple_momentum_conv").create_model(), "reversible"),
            "identically 0",
        ),
        (lambda: set_memory(nn.Sequential(nn.Conv2d(3, 3, 1)), "reversible"), "no stages"),
    ],
)
def test_reversible_is_refused_where_the_network_is_not_invertible(build, reason):
    with pytest.raises(UserError, match="not invertible") as info:
        build()
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


def test_checkpoint_works_for_every_form_and_equals_standard_exactly():
    torch.manual_seed(0)
    nets = [
        HB.cifar_resnet(depth=14, widths=(2, 3, 4), coefficients={"beta1": 1.0, "beta2": -1.0}),
        load_generated("admm_conv").cifar_resnet(depth=14, widths=(2, 3, 4)),
        load_generated("nesterov2_conv").cifar_densenet(depth=10, growth=2),
        load_generated("triple_momentum_conv").cifar_resnet(depth=14, widths=(2, 3, 4)),
    ]
    x, y = batch(size=8)
    for net in nets:
        net = net.double()
        ref, ref_x, ref_net = step(net, "standard", x, y)
        got, got_x, got_net = step(net, "checkpoint", x, y)
        assert all(torch.equal(got[n], ref[n]) for n in ref) and torch.equal(got_x, ref_x)
        assert all(
            torch.equal(a, b) for a, b in zip(got_net.buffers(), ref_net.buffers(), strict=True)
        )


def test_checkpoint_needs_generated_stages():
    with pytest.raises(UserError, match="no blocks"):
        set_memory(nn.Sequential(nn.Conv2d(3, 3, 1)), "checkpoint")
    with pytest.raises(UserError, match="memory must be one of"):
        create_model("prehbnet20", memory="swap")


def test_modes_keep_the_state_dict_and_can_be_switched_back():
    net = tiny_hbnet()
    keys = list(net.state_dict())
    x, _ = batch()
    with torch.no_grad():
        plain = net.eval()(x)
    for mode in ("reversible", "checkpoint", "standard"):
        set_memory(net, mode)
        assert memory_mode(net) == mode and list(net.state_dict()) == keys
        with torch.no_grad():
            assert torch.equal(net(x), plain)  # evaluation never takes the recomputing path
    assert not any("forward" in m.__dict__ for m in net.modules())
    twin = copy.deepcopy(set_memory(net, "reversible"))  # a copy runs its own stages
    assert all(s.forward.args[0] is s for s in twin.stages if "forward" in s.__dict__)
    assert memory_mode(twin) == "reversible"


def test_reversible_under_bf16_autocast_keeps_the_z_stream_in_float32():
    net = set_memory(tiny_hbnet(dtype=torch.float32), "reversible").train()
    x, y = batch(torch.float32)
    outputs = []
    net.stages[0].register_forward_hook(lambda m, i, o: outputs.append(o))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(net(x), y)
    loss.backward()
    assert outputs[0].dtype == torch.float32
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    ref = set_memory(copy.deepcopy(net), "standard")
    assert abs(F.cross_entropy(ref(x), y).item() - loss.item()) < 0.05


def test_reversible_under_torch_compile():
    """torch.compile: blocks 1 … K−1 of a stage run eagerly (one graph break), the rest compiled."""
    torch.manual_seed(0)
    blocks = [HB.Block(HB.PreActBasicBranch(2, 2), HBNET["coefficients"]) for _ in range(3)]
    stage = HB.Stage(blocks).double().train()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    ref = set_memory(copy.deepcopy(stage), "standard")
    ref(x).square().sum().backward()
    rev = set_memory(copy.deepcopy(stage), "reversible")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()  # dynamo counts each graph break here, by its reason
    torch.compile(rev, backend="aot_eager")(x).square().sum().backward()
    reasons = list(torch._dynamo.utils.counters["graph_break"].elements())
    assert reasons and all("_run_reversible" in reason for reason in reasons), reasons
    assert len(reasons) <= 2  # at most the call and its resume: the rest of the stage is traced
    torch._dynamo.reset()
    for (name, p), q in zip(rev.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-12, msg=name)
    assert all(torch.equal(a, b) for a, b in zip(rev.buffers(), ref.buffers(), strict=True))


HB3 = """
name = "hb3"
title = "Heavy ball with a third lag"
states = ["x"]
[coefficients]
beta = 0.3
gamma = { default = -0.5, min = -1, max = 1 }
[update]
"x[k+1]" = "x[k] - grad(x[k]) + beta*(x[k] - x[k-1]) + gamma*x[k-2]"
[initial]
"x[-1]" = "x[0]"
"x[-2]" = "x[0]"
"""


def test_a_users_three_lag_recurrence_runs_backwards(tmp_path):
    """Look-back 3: the stage keeps three states and recovers z_(k−2) from z_(k+1), z_k, z_(k−1)."""
    from derive.codegen.generate import write_network
    from derive.models.registry import load_python_file

    (tmp_path / "hb3.toml").write_text(HB3, encoding="utf-8")
    module = load_python_file(str(write_network(str(tmp_path / "hb3.toml"), "conv", tmp_path)))
    assert module.LAGS == 3 and module.INVERTIBLE
    assert module.INVERTIBILITY == "zₖ₋₂ = (zₖ₊₁ − T_k(zₖ) − β₁·zₖ − β₂·zₖ₋₁)/β₃"
    torch.manual_seed(0)
    coefficients = {"beta1": 1.0, "beta2": -0.5, "beta3": -1.0}
    net = module.cifar_preact_resnet(depth=20, widths=(3, 4, 5), coefficients=coefficients)
    x, y = batch()
    ref, ref_x, _ = step(net.double(), "standard", x, y)
    rev, rev_x, _ = step(net.double(), "reversible", x, y)
    assert_grads_close(rev, ref, rtol=1e-9, scale_atol=1e-11)
    torch.testing.assert_close(rev_x, ref_x, rtol=1e-9, atol=1e-11 * ref_x.abs().max().item())


def test_the_pre_run_memory_estimate_follows_the_mode():
    """derive train's memory check (derive.memcheck) counts one recomputed block, not all of them."""
    from derive.memcheck import activation_bytes_per_image

    sizes = {}
    for mode in ("standard", "checkpoint", "reversible"):
        net = set_memory(tiny_hbnet(56, dtype=torch.float32), mode)
        sizes[mode] = activation_bytes_per_image(net, (3, 16, 16))
    assert max(sizes["reversible"], sizes["checkpoint"]) < 0.25 * sizes["standard"]
    assert memory_mode(net) == "reversible"  # the estimate leaves the mode alone
