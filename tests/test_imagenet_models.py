"""The ImageNet networks run forward, and their multiply-adds are SCIS Table 2's.

Parameters alone cannot tell ResNet-50 v1 (stride on the first 1×1 of a bottleneck, as He et al. and
the papers) from v1.5 (stride on the 3×3): same parameters, 3.86 vs 4.09 G multiply-adds, other
outputs. So each model is counted at 224×224 by torch.utils.flop_counter on meta tensors (no memory,
no arithmetic) and compared with the printed value; a forward pass at 64×64 on the CPU checks that it
runs and gives finite logits. The counter counts convolutions and linear layers (a multiply-add is 2
FLOPs); the printed counts also include the element-wise work (BN, ReLU, pooling, HB's extra
addition, AGD's α scaling), so ours may lie slightly below the printed value, never above.
"""

from __future__ import annotations

import pytest
import torch
from zoo_meta import meta_model, shapes_only

from derive.models import create_model
from derive.models.stats import count_flops

# SCIS Table 2, "FLOPs (G)" column, typed from the paper.
PRINTED_GFLOPS = {
    "resnet34": 3.66,
    "hbnet34": 3.66,
    "resnet50": 3.86,
    "hbnet50": 3.87,
    "resnet101": 7.58,
    "hbnet101": 7.59,
    "densenet121": 2.88,
    "agdnet121": 2.92,
}
# How far below the printed value the counted convolutions may lie: what the counter skips.
# Residual nets: BN/ReLU/additions are ~0.3 % of the work. DenseNet: its BN-ReLU before every
# convolution runs over the whole concatenation, ~1.6 % (2.83 vs 2.88), AGDNet adds its α scaling.
SKIPPED = {"resnet": 0.005, "hbnet": 0.005, "densenet": 0.02, "agdnet": 0.03}


@pytest.fixture(autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FORWARD_SLOW = ("resnet50", "resnet101", "hbnet101", "densenet121")
"""Networks whose forward (after initialising 8–45M weights) runs in `make test-slow` only: their
twins hbnet50 (bottleneck), hbnet34 (basic) and agdnet121 (dense) run the same builders forward in
make test, and every network's multiply-adds are counted there on the meta device."""


def assert_printed_multiply_adds(name: str, model: torch.nn.Module) -> None:
    """The convolutions and linear layers of `model` at 224×224 are SCIS Table 2's count of `name`."""
    model.to("meta")  # count at full size without allocating or computing anything
    gmacs = count_flops(model, (1, 3, 224, 224)) / 2 / 1e9
    printed = PRINTED_GFLOPS[name]
    family = name.rstrip("0123456789")
    assert printed * (1 - SKIPPED[family]) <= gmacs <= printed + 0.005, (name, gmacs, printed)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=[pytest.mark.slow] if name in FORWARD_SLOW else [])
        for name in sorted(PRINTED_GFLOPS)
    ],
)
def test_imagenet_model_runs_and_has_the_printed_multiply_adds(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()
    assert not torch.allclose(logits[0], logits[1])  # the input reaches the output
    assert_printed_multiply_adds(name, model)


@pytest.mark.parametrize("name", FORWARD_SLOW)
def test_the_multiply_adds_of_the_networks_run_in_test_slow_only(name):
    """The count of the test above for the networks it runs in `make test-slow` only, built for
    their shapes only (tests/zoo_meta.py): the count reads nothing else."""
    assert_printed_multiply_adds(name, meta_model(name))


def test_the_flops_check_tells_resnet50_v1_from_v1_5():
    """The stride on the 3×3 (torchvision's v1.5) counts 4.09 G: outside the printed 3.86's band."""
    from derive.codegen.loader import load_generated
    from derive.codegen.papers import RESNET

    with shapes_only():
        v15 = load_generated("heavyball_conv").imagenet_resnet(
            depth=50, stride_in_1x1=False, **RESNET
        )
    gmacs = count_flops(v15, (1, 3, 224, 224)) / 2 / 1e9
    assert 4.05 < gmacs < 4.15 and gmacs > PRINTED_GFLOPS["resnet50"] + 0.005
