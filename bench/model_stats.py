"""Parameters and FLOPs of the zoo beside the papers' tables; writes docs/results/models.md.

    .venv/bin/python bench/model_stats.py [--out docs/results/models.md]

FLOPs are counted by torch.utils.flop_counter on one image and halved to multiply-adds, the unit
of SCIS Table 2 (convolutions and linear layers only: BN, ReLU, pooling and additions are free).
tests/test_results_docs.py rebuilds the file with build_markdown() and compares it byte for byte.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch

from derive.fsutil import atomic_write_text, ensure_output_dir
from derive.models import create_model, list_models, model_entry
from derive.models.stats import count_flops, count_parameters

# (printed params in M, printed GFLOPs or None): SCIS Table 1 (CIFAR) and Table 2 (ImageNet).
PRINTED = {
    "resnet32": (0.46, None),  # He et al., Deep Residual Learning (2016), Table 6
    "resnet56": (0.85, None),
    "hbnet56": (0.85, None),
    "resnet110": (1.7, None),
    "hbnet110": (1.7, None),
    "densenet40": (1.0, None),
    "agdnet40": (1.0, None),
    "densenet52": (1.4, None),
    "agdnet52": (1.4, None),
    "resnet34": (21.80, 3.66),
    "hbnet34": (21.80, 3.66),
    "resnet50": (25.56, 3.86),
    "hbnet50": (25.56, 3.87),
    "resnet101": (44.55, 7.58),
    "hbnet101": (44.55, 7.59),
    "densenet121": (7.98, 2.88),
    "agdnet121": (7.98, 2.92),
    # He et al., Identity Mappings in Deep Residual Networks (2016), pre-activation ResNets
    "preresnet110": (1.7, None),
    "preresnet164": (1.7, None),
    "preresnet1001": (10.2, None),
}

NOTES = """
Notes:
- Every network is built from the generated code (`generated/*_conv.py`) by `derive.models`.
- ResNet-50/101 put the stride on the first 1×1 convolution of a bottleneck, as the original ResNet
  does; that is what reproduces the printed 3.86 / 7.58 GFLOPs (torchvision's "v1.5" puts it on the
  3×3 and counts 4.1 G for ResNet-50). Parameters are the same either way.
- **DenseNet/AGDNet (k = 12, L = 52): printed 1.4M, built 1.79M.** L = 52 with three dense stages and no
  bottleneck means (52 − 4)/3 = 16 layers per stage, which has 1,785,466 parameters (1.0M for L = 40
  checks out the same way, see tests/test_zoo.py). We build the described architecture and do not
  invent a variant to hit the printed number.
- **HBNet's first block of every stage is a plain block.** Each stage restarts heavy ball at its
  input with z₋₁ = z₀, so β₁z₀ + β₂z₋₁ = z₀ − z₀ cancels the shortcut: z₁ = ReLU(T(x)) (`hbnet*`;
  T(x) for the pre-activation `prehbnet*`), the first step of heavy ball from rest; only the later
  blocks are z_{k+1} = ρ(T(z_k) + z_k − z_{k−1}) (docs/algorithms.md, "Stages"; tests/test_zoo.py
  checks it on the built networks). That is the zoo's reading; the HBNet factories take the others
  the papers leave open as keywords: `stage_start="zero"` (z₋₁ = 0, so z₁ = ReLU(T(x) + z₀),
  ResNet's first block), `post_relu=False` (no ρ) and `learn_beta2=True` (β₂ learned from −1,
  one parameter per block). The rows here are the defaults.
- `resnet32`, `hbnet32`: printed 0.46M is He et al.'s (Deep Residual Learning, 2016, Table 6).
- `admmnet56`: (C5) adds one history sum Σₜ αᵗz′ₜ + βᵗzₜ to both paths. Its α, β are those of the
  first (z′) path of (13), α = −½ on z′₁…z′ₖ and β = ½ on z₁…zₖ plus ½ on zₖ; (13)'s z path weighs
  the history otherwise (+½ on z′₁…z′ₖ₊₁, −½ on z₁…zₖ), and (C5) does not use those weights.
- HBNet adds no parameters; AGDNet adds one learnable α per (layer, source): 234 on CIFAR L = 40, 535 on
  ImageNet. Their FLOPs here equal their baselines' because the counter skips element-wise work; the
  papers' HBNet/AGDNet FLOPs are 0.01–0.04 G above the baselines, which is that element-wise work.
- The counter skips BN/ReLU/pooling, so DenseNet-121 reads 2.83 G against the printed 2.88 G.
- `preresnet*`: the printed counts are He et al.'s (Identity Mappings, 2016), not SCIS's. ResNet-1001
  prints 10.2M: our 10.33M without the BatchNorm scales and shifts is 10.18M. The pre-activation
  HBNets have the same parameters as their ResNets (docs/memory.md).
- `qhmnet56`, `egnet56`, `hbvnet56`: the multi-stream form (several states, several T per block).
  QHM and heavy ball with a velocity evaluate one T per block, so they have HBNet-56's parameters
  and FLOPs; the extragradient method evaluates two (at x and at the extrapolated point), so
  `egnet56` has two branches per block, as many as a 110-layer ResNet.
"""


def build_markdown(skip: Callable[[str], bool] = lambda name: False) -> str:
    """The whole of docs/results/models.md, from the zoo as it is now (deterministic: no clock).

    `skip(name)` leaves a model's row out (the fast freshness test skips the 1001-layer nets).

    Models are built on the meta device (shapes only: no memory, no arithmetic), which is enough
    to count parameters and to trace the FLOPs of one forward pass.
    """
    rows = []
    for name in list_models():
        if skip(name):
            continue
        entry = model_entry(name)
        with torch.device("meta"):
            model = create_model(name)
        size = 32 if entry.dataset == "cifar" else 224
        params = count_parameters(model)
        macs = count_flops(model, (1, 3, size, size)) / 2
        printed_params, printed_flops = PRINTED.get(name, (None, None))
        rows.append(
            f"| `{name}` | {entry.dataset} | {params:,} | {params / 1e6:.2f} | "
            f"{printed_params if printed_params is not None else '—'} | {macs / 1e9:.3f} | "
            f"{printed_flops if printed_flops is not None else '—'} | {entry.description} |"
        )
    return (
        "# Model zoo: parameters and FLOPs beside the papers\n\n"
        "Produced by `.venv/bin/python bench/model_stats.py` (torch "
        f"{torch.__version__}); CIFAR models at 32×32 with 10 classes, ImageNet at 224×224 with 1000.\n\n"
        "| model | data | parameters | M | printed M | GMACs (ours) | printed G | what it is |\n"
        "|---|---|---:|---:|---:|---:|---:|---|\n" + "\n".join(rows) + "\n" + NOTES
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/results/models.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    text = build_markdown()
    print(text)
    ensure_output_dir(Path(args.out).parent)
    atomic_write_text(args.out, text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
