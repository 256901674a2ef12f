"""The papers' networks as arguments of a generated conv module's `create_model`.

Each entry builds the same network as the zoo name it lists (tests/test_model_args.py checks the
parameters against the zoo); the generated module's docstring shows the call and the equivalent
`derive train ALGO_conv.py --model-arg ...` command. DMRNet is missing: its coefficients differ
per block (a function of k), which only Python can pass (derive.models.zoo).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class PaperNetwork:
    """A network of the papers: its name, its zoo name and its create_model keyword arguments."""

    title: str
    zoo: str
    arguments: Mapping[str, object]

    def call(self) -> str:
        """'create_model(depth=56, coefficients={...})'."""
        return "create_model(" + ", ".join(f"{k}={v!r}" for k, v in self.arguments.items()) + ")"

    def command(self, filename: str) -> str:
        """'derive train FILE --model-arg depth=56 --model-arg coefficients.beta1=1.0 ...'."""
        parts = [f"derive train {filename}"]
        for name, value in self.arguments.items():
            items = value.items() if isinstance(value, Mapping) else [(None, value)]
            for key, item in items:
                where = f"{name}.{key}" if key else name
                parts.append(f"--model-arg {where}={_text(item)}")
        return " ".join(parts)


def _text(value: object) -> str:
    """A value as --model-arg reads it back: true/false, numbers as Python prints them, bare words."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_RESNET = {"coefficients": {"beta1": 1.0, "beta2": 0.0}, "modes": {"beta2": "pruned"}}
_HBNET = {"coefficients": {"beta1": 1.0, "beta2": -1.0}}

PAPER_NETWORKS: dict[str, tuple[PaperNetwork, ...]] = {
    "heavyball": (
        PaperNetwork("ResNet-56", "resnet56", {"depth": 56, **_RESNET}),
        PaperNetwork("HBNet-56", "hbnet56", {"depth": 56, **_HBNET}),
    ),
    "nesterov2": (
        PaperNetwork(
            "DenseNet-40 (k = 12)",
            "densenet40",
            {"depth": 40, "alpha": "ones", "modes": {"beta": "pruned"}},
        ),
        PaperNetwork(
            "AGDNet-40 (k = 12)",
            "agdnet40",
            {"depth": 40, "alpha": "ones", "modes": {"alpha": "learnable"}, "beta": 0.1},
        ),
    ),
    "gd": (PaperNetwork("plain CNN-56", "cnn56", {"depth": 56}),),
    "admm": (PaperNetwork("ADMM net-56", "admmnet56", {"depth": 56}),),
}
"""Per algorithm, its networks in the papers (other depths: change `depth`, as the zoo does)."""


def paper_networks(algorithm: str, filename: str) -> list[dict[str, str]]:
    """What a generated module's docstring lists: title, zoo name, Python call, command."""
    return [
        {"title": n.title, "zoo": n.zoo, "call": n.call(), "command": n.command(filename)}
        for n in PAPER_NETWORKS.get(algorithm, ())
    ]
