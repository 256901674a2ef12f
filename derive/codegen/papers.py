"""The papers' networks: the zoo table, which generated conv module builds each, and how.

`ZOO` is the one list of the built-in networks (derive.models.zoo registers it): each entry names
the algorithm whose generated module `ALGO_conv.py` builds it, the builder of that module
(`cifar_resnet`, `cifar_preact_resnet`, `imagenet_resnet`, `cifar_densenet`, `imagenet_densenet`)
and the builder's keyword arguments. The generated module gets one factory function per entry
(`hbnet56()`, as torchvision's `resnet50()`), a short call of the builder; a module whose algorithm
has no entry gets the generic factories `cifar(depth=...)` and `imagenet(depth=...)`.

Entries with a title are also listed in the module's docstring as `create_model` calls and the
equivalent `derive train ALGO_conv.py --model-arg ...` command (tests/test_model_args.py checks
they build the zoo's network). DMRNet is not: its coefficients differ per block (a function of k,
`dmrnet_coefficients` in admm's conv module), which only Python can pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass

from derive.errors import UserError


class PythonName(str):
    """A name in the generated module (a function), printed bare where arguments are printed."""

    def __repr__(self) -> str:
        return str(self)


@dataclass(frozen=True)
class Reading:
    """A keyword of a zoo factory for a choice the papers leave open; its default is the zoo's."""

    name: str
    default: bool | str
    choices: tuple[bool | str, ...]
    argument: str  # the builder's keyword argument, Python source reading `name`
    doc: str  # what each value means, with the equation

    @property
    def annotation(self) -> str:
        """'bool' or 'str', as the factory's signature prints it."""
        return type(self.default).__name__

    def check(self, value: object, network: str) -> object:
        """`value` if it is one of the choices; UserError otherwise."""
        if type(value) is type(self.default) and value in self.choices:
            return value
        raise UserError(
            f"{network}: {self.name} must be one of {', '.join(map(repr, self.choices))}, "
            f"got {value!r}"
        )


STAGE_START = Reading(
    "stage_start",
    "input",
    ("input", "zero"),
    "stage_start=stage_start",
    "'input': z₋₁ = z₀, as derived, so each stage's first block is z₁ = ρ(T₀(x)), without the "
    "shortcut; 'zero': z₋₁ = 0, so z₁ = ρ(T₀(x) + z₀), ResNet's first block",
)
POST_RELU = Reading(
    "post_relu",
    True,
    (True, False),
    "post_activation=post_relu",
    "True: ρ = ReLU after the sum, zₖ₊₁ = ReLU(Tₖ(zₖ) + zₖ + β₂·zₖ₋₁); False: no ρ, "
    "zₖ₊₁ = Tₖ(zₖ) + zₖ + β₂·zₖ₋₁",
)
LEARN_BETA2 = Reading(
    "learn_beta2",
    False,
    (True, False),
    'modes={"beta2": "learnable" if learn_beta2 else "fixed"}',
    "False: β₂ = −1 fixed; True: β₂ a learnable parameter of every block, starting from −1",
)
HBNET_READINGS = (STAGE_START, POST_RELU, LEARN_BETA2)
"""HBNet's open readings (post-activation shapes): the restart, ρ, and whether β₂ is learned."""

PREACT_HBNET_READINGS = (STAGE_START, LEARN_BETA2)
"""The pre-activation HBNets have no ρ; the restart and β₂ stay open."""


@dataclass(frozen=True)
class ZooNetwork:
    """A built-in network: its zoo name, the generated module and builder, and the arguments."""

    name: str
    algorithm: str  # built by generated/ALGORITHM_conv.py
    builder: str
    arguments: Mapping[str, object]  # the builder's keyword arguments besides num_classes
    description: str
    title: str = ""  # set: listed in the module docstring as a create_model call
    readings: tuple[Reading, ...] = ()  # the factory's keywords besides num_classes

    @property
    def dataset(self) -> str:
        """ "cifar" or "imagenet", from the builder."""
        return "imagenet" if self.builder.startswith("imagenet") else "cifar"

    @property
    def num_classes(self) -> int:
        """The factory's default number of classes (CIFAR-10's or ImageNet's)."""
        return 1000 if self.dataset == "imagenet" else 10

    def call(self) -> str:
        """The factory's body: 'cifar_resnet(depth=56, num_classes=num_classes, ...)', the plan
        (depth, or growth, layers and bottleneck) first, then the readings' arguments.
        """
        plan = [k for k in self.arguments if k in PLAN_ARGUMENTS]
        rest = [k for k in self.arguments if k not in PLAN_ARGUMENTS]
        parts = [f"{k}={self.arguments[k]!r}" for k in plan] + ["num_classes=num_classes"]
        parts += [f"{k}={self.arguments[k]!r}" for k in rest]
        parts += [r.argument for r in self.readings]
        return f"{self.builder}({', '.join(parts)})"

    def parameters(self) -> str:
        """The factory's parameters: 'num_classes: int = 10, *, stage_start: str = "input", ...'."""
        text = f"num_classes: int = {self.num_classes}"
        if self.readings:
            text += ", *, " + ", ".join(
                f"{r.name}: {r.annotation} = {r.default!r}" for r in self.readings
            )
        return text

    def reading_docs(self) -> list[str]:
        """Each reading of the factory and what its values mean, for its docstring."""
        return [f"`{r.name}`: {r.doc}." for r in self.readings]

    def signature(self) -> inspect.Signature:
        """The factory's signature (annotations as strings), without importing its module."""
        keyword = inspect.Parameter.KEYWORD_ONLY
        return inspect.Signature(
            [inspect.Parameter("num_classes", keyword, default=self.num_classes, annotation="int")]
            + [
                inspect.Parameter(r.name, keyword, default=r.default, annotation=r.annotation)
                for r in self.readings
            ]
        )

    def checked_readings(self, values: Mapping[str, object]) -> dict[str, object]:
        """`values` for the factory's readings, each checked; UserError on an unknown name."""
        known = {r.name: r for r in self.readings}
        unknown = sorted(set(values) - set(known))
        if unknown:
            takes = ", ".join(known) or "nothing besides num_classes"
            raise UserError(f"{self.name} takes no argument {unknown[0]!r} (it takes: {takes})")
        return {name: known[name].check(value, self.name) for name, value in values.items()}


PLAN_ARGUMENTS = ("depth", "growth", "layers", "bottleneck")
"""A builder's arguments that give a network's plan, printed first in a factory's call."""


RESNET = {"coefficients": {"beta1": 1.0, "beta2": 0.0}, "modes": {"beta2": "pruned"}}
"""ResNet: β₁ = 1, β₂ = 0 (pruned) in (C1)."""

HBNET = {"coefficients": {"beta1": 1.0, "beta2": -1.0}}
"""HBNet (SCIS C.1): β₁ = 1, β₂ = −1 in (C1)."""

DENSENET = {"alpha": "ones", "modes": {"beta": "pruned"}}
"""DenseNet: α = 1, β = 0 (pruned) in (C3)."""

AGDNET = {"alpha": "ones", "modes": {"alpha": "learnable"}, "beta": 0.1}
"""AGDNet (SCIS C.2, (C6)): learnable α (initialised at 1, i.e. DenseNet), h from (5), β = 0.1."""

PLAIN_FIRST = (
    "the first block of each stage is a plain block, z₁ = {z1} (z₋₁ = z₀ cancels the shortcut)"
)
"""What HBNet's restart at z₋₁ = z₀ makes of each stage's first block (docs/algorithms.md, Stages)."""

PREACT_DEPTHS = {20: False, 56: False, 110: False, 164: True, 1001: True}
"""Pre-activation CIFAR depths and whether they use the bottleneck (He et al. 2016, Identity Mappings)."""


def _cifar_resnets() -> list[ZooNetwork]:
    networks = []
    for depth in (20, 32, 56, 110):
        networks.append(
            ZooNetwork(
                f"resnet{depth}",
                "heavyball",
                "cifar_resnet",
                {"depth": depth, **RESNET},
                f"ResNet-{depth} (He et al. 2016): (C1) with β₁ = 1, β₂ = 0",
                "ResNet-56" if depth == 56 else "",
            )
        )
        networks.append(
            ZooNetwork(
                f"hbnet{depth}",
                "heavyball",
                "cifar_resnet",
                {"depth": depth, **HBNET},
                f"HBNet-{depth} (SCIS C.1): (C1) with β₁ = 1, β₂ = −1, ReLU after the sum "
                f"(not invertible); {PLAIN_FIRST.format(z1='ReLU(T(x))')}",
                "HBNet-56" if depth == 56 else "",
                HBNET_READINGS,
            )
        )
    return networks


def _other_cifar_resnets() -> list[ZooNetwork]:
    return [
        ZooNetwork(
            "cnn56",
            "gd",
            "cifar_resnet",
            {"depth": 56},
            "Plain 56-layer CNN: gradient descent's z_{k+1} = ρ(T(z_k))",
            "plain CNN-56",
        ),
        ZooNetwork(
            "dmrnet56",
            "admm",
            "cifar_resnet",
            {"depth": 56, "coefficients": PythonName("dmrnet_coefficients")},
            "DMRNet-56 (two paths of 27 blocks): (C5) with α = β = ½ on the last iterate",
        ),
        ZooNetwork(
            "admmnet56",
            "admm",
            "cifar_resnet",
            {"depth": 56},
            "ADMM net-56 (two paths of 27 blocks): (C5) with the α, β of the first (z′) path of "
            "(13), α = −½ on z′₁…z′ₖ, β = ½ on z₁…zₖ plus ½ on zₖ, shared by both paths as (C5) "
            "prints them ((13)'s z path has other weights)",
            "ADMM net-56",
        ),
    ]


def _multi_stream() -> list[ZooNetwork]:
    """Networks of the multi-stream form: several states, several T per block."""
    return [
        ZooNetwork(
            "qhmnet56",
            "qhm",
            "cifar_resnet",
            {"depth": 56},
            "QHMNet-56: quasi-hyperbolic momentum (Ma & Yarats 2019) with β = 0.9, ν = 0.7, two "
            "streams (x and the gradient average m, restarted at 0 in each stage), one T per "
            "block, ReLU after the x update",
        ),
        ZooNetwork(
            "egnet56",
            "extragradient",
            "cifar_resnet",
            {"depth": 56},
            "EGNet-56: the extragradient method (Korpelevich 1976), two T per block (at x and at "
            "the extrapolated point y = T₁(x)), ReLU after the x update",
        ),
        ZooNetwork(
            "hbvnet56",
            "heavyball_velocity",
            "cifar_resnet",
            {"depth": 56, "algorithm_coefficients": {"beta": 1.0}},
            "HBVNet-56: heavy ball written with a velocity v, β = 1 (HBNet's coefficients), ReLU "
            "after the x update only; without ReLU it is HBNet-56 block for block",
        ),
    ]


def _cifar_preact() -> list[ZooNetwork]:
    networks = []
    for depth, bottleneck in PREACT_DEPTHS.items():
        unit = "bottleneck" if bottleneck else "basic"
        arguments = {"depth": depth, "bottleneck": bottleneck}
        networks.append(
            ZooNetwork(
                f"preresnet{depth}",
                "heavyball",
                "cifar_preact_resnet",
                {**arguments, **RESNET},
                f"Pre-activation ResNet-{depth} ({unit} units; He et al., Identity Mappings "
                "2016): (C1) with β₁ = 1, β₂ = 0, no ρ",
            )
        )
        networks.append(
            ZooNetwork(
                f"prehbnet{depth}",
                "heavyball",
                "cifar_preact_resnet",
                {**arguments, **HBNET},
                f"Pre-activation HBNet-{depth} ({unit} units): (C1) with β₁ = 1, β₂ = −1, no ρ; "
                f"{PLAIN_FIRST.format(z1='T(x)')}; invertible (memory='reversible')",
                readings=PREACT_HBNET_READINGS,
            )
        )
    return networks


def _cifar_densenets() -> list[ZooNetwork]:
    networks = []
    for depth in (40, 52):
        networks.append(
            ZooNetwork(
                f"densenet{depth}",
                "nesterov2",
                "cifar_densenet",
                {"depth": depth, **DENSENET},
                f"DenseNet (k = 12, L = {depth}): (C3) with α = 1, β = 0",
                "DenseNet-40 (k = 12)" if depth == 40 else "",
            )
        )
        networks.append(
            ZooNetwork(
                f"agdnet{depth}",
                "nesterov2",
                "cifar_densenet",
                {"depth": depth, **AGDNET},
                f"AGDNet (k = 12, L = {depth}): (C6), learnable α, β = 0.1",
                "AGDNet-40 (k = 12)" if depth == 40 else "",
            )
        )
    return networks


IMAGENET_RESNET_PLANS: dict[int, dict[str, object]] = {
    34: {"layers": (3, 4, 6, 3), "bottleneck": False},
    50: {"layers": (3, 4, 6, 3), "bottleneck": True},
    101: {"layers": (3, 4, 23, 3), "bottleneck": True},
}
"""Blocks per stage and unit of the zoo's ImageNet ResNets (He et al. 2016, Table 1)."""

DENSENET121_PLAN: dict[str, object] = {"growth": 32, "layers": (6, 12, 24, 16)}
"""DenseNet-121's growth and layers per dense stage (Huang et al. 2017, Table 1)."""


def _imagenet() -> list[ZooNetwork]:
    networks = []
    for depth, plan in IMAGENET_RESNET_PLANS.items():
        networks.append(
            ZooNetwork(
                f"resnet{depth}",
                "heavyball",
                "imagenet_resnet",
                {**plan, **RESNET},
                f"ResNet-{depth} for ImageNet: (C1) with β₁ = 1, β₂ = 0",
            )
        )
        networks.append(
            ZooNetwork(
                f"hbnet{depth}",
                "heavyball",
                "imagenet_resnet",
                {**plan, **HBNET},
                f"HBNet-{depth} for ImageNet: (C1) with β₁ = 1, β₂ = −1; "
                + PLAIN_FIRST.format(z1="ReLU(T(x))"),
                readings=HBNET_READINGS,
            )
        )
    networks.append(
        ZooNetwork(
            "densenet121",
            "nesterov2",
            "imagenet_densenet",
            {**DENSENET121_PLAN, **DENSENET},
            "DenseNet-121 (DenseNet-BC, k = 32): (C3) with α = 1, β = 0",
        )
    )
    networks.append(
        ZooNetwork(
            "agdnet121",
            "nesterov2",
            "imagenet_densenet",
            {**DENSENET121_PLAN, **AGDNET},
            "AGDNet-121: (C6) on DenseNet-121, learnable α, β = 0.1",
        )
    )
    return networks


ZOO: tuple[ZooNetwork, ...] = tuple(
    _cifar_resnets()
    + _other_cifar_resnets()
    + _multi_stream()
    + _cifar_preact()
    + _cifar_densenets()
    + _imagenet()
)
"""The built-in networks, each a factory of a generated conv module (derive.models.zoo)."""


def zoo_networks(algorithm: str) -> list[ZooNetwork]:
    """The zoo's networks built by `ALGORITHM_conv.py`, in the table's order."""
    return [n for n in ZOO if n.algorithm == algorithm]


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


def _paper_networks() -> dict[str, tuple[PaperNetwork, ...]]:
    """The titled zoo entries of create_model's builders (cifar_resnet, cifar_densenet)."""
    found: dict[str, list[PaperNetwork]] = {}
    for n in ZOO:
        if n.title and n.builder in ("cifar_resnet", "cifar_densenet"):
            found.setdefault(n.algorithm, []).append(PaperNetwork(n.title, n.name, n.arguments))
    return {algorithm: tuple(networks) for algorithm, networks in found.items()}


PAPER_NETWORKS: dict[str, tuple[PaperNetwork, ...]] = _paper_networks()
"""Per algorithm, its networks in the papers (other depths: change `depth`, as the zoo does)."""


def paper_networks(algorithm: str, filename: str) -> list[dict[str, str]]:
    """What a generated module's docstring lists: title, zoo name, Python call, command."""
    return [
        {
            "title": n.title,
            "zoo": n.zoo,
            "call": n.call(),
            "command": n.command(filename),
        }
        for n in PAPER_NETWORKS.get(algorithm, ())
    ]


GENERIC_FACTORIES: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "resnet": (
        (
            "cifar",
            "cifar_resnet",
            "56",
            "A CIFAR ResNet-shaped network of these blocks (depth 6n + 2).",
        ),
        (
            "imagenet",
            "imagenet_resnet",
            "50",
            "An ImageNet ResNet-shaped network of these blocks (depth 18, 34, 50, 101 or 152).",
        ),
    ),
    "dense": (
        (
            "cifar",
            "cifar_densenet",
            "40",
            "A CIFAR DenseNet-shaped network of these stages (depth 3n + 4).",
        ),
        (
            "imagenet",
            "imagenet_densenet",
            "121",
            "An ImageNet DenseNet-BC-shaped network of these stages (depth 121, 169 or 201).",
        ),
    ),
}
"""(factory, builder, default depth, docstring) of a module whose algorithm has no zoo network."""


def factories(algorithm: str, family: str) -> list[dict[str, str]]:
    """The factory functions a generated conv module defines: name, parameters, doc, body."""
    zoo = zoo_networks(algorithm)
    if zoo:
        return [
            {
                "name": n.name,
                "parameters": n.parameters(),
                "doc": n.description + ".",
                "readings": n.reading_docs(),
                "call": n.call(),
            }
            for n in zoo
        ]
    return [
        {
            "name": name,
            "parameters": f"depth: int = {depth}, num_classes: int = {1000 if name == 'imagenet' else 10}",
            "doc": doc,
            "readings": [],
            "call": f"{builder}(depth=depth, num_classes=num_classes)",
        }
        for name, builder, depth, doc in GENERIC_FACTORIES[family]
    ]
