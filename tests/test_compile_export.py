"""Every family of networks compiles whole and exports.

For each family (heavy ball's post- and pre-activation ResNets/HBNets, an ImageNet network, the
dense AGD networks, gradient descent's plain CNN, ADMM's two-path networks, a NAS evaluation
network, and the checkpoint and reversible memory modes): `torch.compile(backend="aot_eager",
fullgraph=True)` captures the forward in one graph (fullgraph raises on any graph break), its eval
outputs equal eager's, its training-mode gradients equal eager's, and `torch.export.export` of the
eval model gives a program whose output equals eager's. `make test` exports the smallest member of
each family (two blocks a stage) and compiles those whose blocks differ for dynamo (the case lists
below); the papers' deeper networks and the other captures run in `make test-slow`.

aot_eager runs the traced graph with PyTorch's own kernels (after AOTAutograd's decompositions),
so the only differences from eager are the order of floating-point sums: the tolerances below
(float32) are far above those and far below any wrong wiring.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from derive.codegen.loader import load_generated
from derive.codegen.papers import HBNET, RESNET
from derive.models import create_model, resolve_model
from derive.models.memory import set_memory
from derive.nas import build_network

GENERATED = Path(__file__).resolve().parents[1] / "generated"
HEAVYBALL = load_generated("heavyball_conv")
SMALL = {
    "gd_conv.py:depth=14": ("gd_conv.py", {"depth": 14}),  # the plain CNN of cnn56, 14 layers
    "nesterov2_conv.py:depth=13": ("nesterov2_conv.py", {"depth": 13}),  # DenseNet's shape, L = 13
    "admm_conv.py:depth=14": ("admm_conv.py", {"depth": 14}),  # ADMM's two paths, 14 layers
    "qhm_conv.py:depth=14": ("qhm_conv.py", {"depth": 14}),  # two streams, one update node
    "heavyball_conv.py:depth=14": ("heavyball_conv.py", {"depth": 14, **HBNET}),  # HBNet-14
}
"""Smaller builds of the slower families, through the files' create_model (as --model-arg gives)."""
BUILDERS = {
    # pre-activation HBNet-14: two blocks a stage, so the restart block and a block that reads
    # z_(k-1) are both traced, as in prehbnet20's three
    "prehbnet14": lambda: (HEAVYBALL.cifar_preact_resnet(depth=14, num_classes=5, **HBNET), 32),
    # ImageNet's stem, 4 stages and shortcut B with ResNet-18's plan (two blocks a stage, as
    # resnet34's stages are the same two kinds of block repeated), at 3×64×64
    "resnet18": lambda: (
        HEAVYBALL.imagenet_resnet(layers=(2, 2, 2, 2), num_classes=5, **RESNET),
        64,
    ),
}
"""Builders of networks that no file's create_model gives: (model, input size)."""
MEMORY_MODES = ("checkpoint", "reversible")
OUTPUT_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
GRADIENT_TOLERANCE = {"rtol": 1e-3, "atol": 1e-5}


@pytest.fixture(autouse=True)
def single_thread_and_fresh_dynamo():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
    torch.set_num_threads(before)


def build(name: str) -> tuple[nn.Module, torch.Tensor]:
    """The network `name` ("zoo name[:memory mode]", a SMALL or BUILDERS key[:memory mode], or
    "nas:GENOTYPE") and a batch-2 input."""
    torch.manual_seed(0)
    if name in SMALL:
        filename, options = SMALL[name]
        return resolve_model(str(GENERATED / filename), 5, **options), torch.randn(2, 3, 32, 32)
    if name.startswith("nas:"):
        model = build_network(name.removeprefix("nas:"), channels=4, cells=3, num_classes=5)
        return model, torch.randn(2, 3, 32, 32)
    head, _, tail = name.rpartition(":")
    base, memory = (head, tail) if tail in MEMORY_MODES else (name, "standard")
    if base in BUILDERS:
        model, size = BUILDERS[base]()
        return set_memory(model, memory), torch.randn(2, 3, size, size)
    model = create_model(base, num_classes=5, memory=memory)
    size = 64 if base.endswith(("34", "50", "101", "121")) else 32  # ImageNet nets: 3×64×64
    return model, torch.randn(2, 3, size, size)


FAST = [
    "heavyball_conv.py:depth=14",  # heavy ball (C1), post-activation
    "prehbnet14",  # pre-activation HBNet
    "prehbnet14:checkpoint",
    "resnet18",  # ImageNet shape, at 64×64
    *[name for name in SMALL if name != "heavyball_conv.py:depth=14"],
    # gradient descent, dense (all-history AGD), ADMM (two paths), at small depths
    "nas:darts_v2",  # a NAS evaluation network
]
"""One network of each family at its smallest: each traces every kind of block its family has
(a stage's first block and a later one), so a graph break or a wrong wiring shows here as in the
deeper members below, which `make test-slow` runs."""
SLOW = ["resnet20", "prehbnet20", "prehbnet20:checkpoint", "resnet34"]
SLOW += ["hbnet20", "hbnet34", "densenet40", "agdnet40", "cnn56", "dmrnet56", "admmnet56"]
SLOW += ["nas:darts_v1"]


def cases(in_make_test: list[str]) -> list:
    """FAST and SLOW, every name but those of `in_make_test` marked slow (`make test-slow`)."""
    return [
        n if n in in_make_test else pytest.param(n, marks=pytest.mark.slow) for n in FAST + SLOW
    ]


EXPORT_CASES = cases([n for n in FAST if n != "prehbnet14"])
"""torch.export of each family's smallest network (in eval mode prehbnet14:checkpoint runs
prehbnet14's plain forward)."""
EVAL_CASES = cases(
    [
        n
        for n in FAST
        if n not in ("prehbnet14", "prehbnet14:checkpoint", "resnet18", "gd_conv.py:depth=14")
    ]
)
"""Eval mode, one graph for the whole forward, for each family whose blocks differ for dynamo:
prehbnet14's blocks are traced in the training step of prehbnet14:checkpoint below; resnet18's stem
and shortcut and gd's plain blocks (convolutions, BN, pooling, the sums heavy ball's blocks make
too) by their export."""
TRAINING_CASES = cases(["prehbnet14:checkpoint"])
"""The training step (AOTAutograd's backward, BN's running statistics, the checkpoint's training
path) on one network in make test: the forwards of the other families are captured whole above,
and the backward graph AOTAutograd derives from a captured forward is family-independent."""


def compiled(model: nn.Module) -> nn.Module:
    """The model under torch.compile with aot_eager, refusing any graph break."""
    return torch.compile(model, backend="aot_eager", fullgraph=True)


@pytest.mark.parametrize("name", EVAL_CASES)
def test_eval_forward_compiles_whole_and_matches_eager(name: str) -> None:
    model, x = build(name)
    model.eval()
    with torch.no_grad():
        expected = model(x)
        got = compiled(model)(x)
    torch.testing.assert_close(got, expected, **OUTPUT_TOLERANCE)


def gradients(
    model: nn.Module, x: torch.Tensor, compile_it: bool = False, **options: object
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training-mode output of `model` (compiled with aot_eager when `compile_it`, with
    `options`) and the gradient of each of its parameters for a fixed loss."""
    forward = torch.compile(model, backend="aot_eager", **options) if compile_it else model
    out = forward(x)
    weights = torch.linspace(-1.0, 1.0, out.numel()).reshape(out.shape)
    (out * weights).sum().backward()
    return out.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", TRAINING_CASES)
def test_training_step_compiles_whole_and_its_gradients_match_eager(name: str) -> None:
    model, x = build(name)
    model.train()
    twin = copy.deepcopy(model)  # same weights and BN buffers: both update their own
    expected_out, expected = gradients(model, x)
    got_out, got = gradients(twin, x, compile_it=True, fullgraph=True)
    torch.testing.assert_close(got_out, expected_out, **OUTPUT_TOLERANCE)
    assert expected and sorted(got) == sorted(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], **GRADIENT_TOLERANCE, msg=key)
    for key, buffer in model.state_dict().items():  # BN running statistics updated alike
        torch.testing.assert_close(twin.state_dict()[key], buffer, **OUTPUT_TOLERANCE, msg=key)


@pytest.mark.parametrize("name", EXPORT_CASES)
def test_exported_program_matches_eager(name: str) -> None:
    model, x = build(name)
    model.eval()
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        expected = model(x)
        got = program.module()(x)
    torch.testing.assert_close(got, expected, **OUTPUT_TOLERANCE)


# --- reversible memory mode -----------------------------------------------------------------------
#
# derive.models.memory runs a reversible stage's blocks 1 … K−1 in a custom autograd Function whose
# backward reconstructs the inputs and calls torch.autograd itself; `_run_reversible`, which applies
# it, is wrapped in @torch.compiler.disable, so dynamo leaves it to eager (one graph break per
# stage) when a graph is being built. Without a graph (torch.no_grad, inference) the stage runs its
# plain forward and compiles whole.

REVERSIBLE = "prehbnet14:reversible"
STAGES = 3  # three stages, each with a reversible run of blocks (block 1 of blocks 0 and 1)


def test_reversible_inference_compiles_whole_and_exports() -> None:
    model, x = build(REVERSIBLE)
    model.eval()
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(compiled(model)(x), expected, **OUTPUT_TOLERANCE)
        program = torch.export.export(model, (x,))
        torch.testing.assert_close(program.module()(x), expected, **OUTPUT_TOLERANCE)


@pytest.mark.xfail(
    strict=True,
    raises=torch._dynamo.exc.Unsupported,
    reason="derive/models/memory.py: @torch.compiler.disable on _run_reversible (its autograd "
    "Function's backward calls torch.autograd itself, which dynamo cannot trace)",
)
def test_reversible_training_step_compiles_whole() -> None:
    model, x = build(REVERSIBLE)
    gradients(model.train(), x, compile_it=True, fullgraph=True)


@pytest.mark.slow  # make test compiles one reversible stage: tests/test_memory.py, same checks
def test_reversible_training_breaks_only_at_the_reversible_blocks_and_matches_eager() -> None:
    model, x = build(REVERSIBLE)
    model.train()
    twin = copy.deepcopy(model)
    expected_out, expected = gradients(model, x)
    torch._dynamo.utils.counters.clear()  # dynamo counts each graph break here, by its reason
    got_out, got = gradients(twin, x, compile_it=True)
    reasons = list(torch._dynamo.utils.counters["graph_break"].elements())
    assert reasons and all("_run_reversible" in reason for reason in reasons), reasons
    assert len(reasons) <= 2 * STAGES  # at most a call and its resume per stage: the rest is traced
    torch.testing.assert_close(got_out, expected_out, **OUTPUT_TOLERANCE)
    assert expected and sorted(got) == sorted(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], **GRADIENT_TOLERANCE, msg=key)
