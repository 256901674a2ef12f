"""Keyword arguments for a model's factory, as `derive train MODEL --model-arg NAME=VALUE` gives them.

A value is parsed without evaluating anything: `true`/`false` (a bool), an integer, a finite
number, or else a string (quotes around it are optional and removed). `NAME.KEY=VALUE` sets one
entry of a mapping argument, e.g. `coefficients.beta1=1` gives `coefficients={"beta1": 1}`.

`check_factory_arguments` then checks the names and types against the factory's signature (its
annotations, or the type of its defaults): an unknown name or a value of the wrong type is a
UserError, before the model is built.
"""

from __future__ import annotations

import inspect
import keyword
import math
import re
from collections.abc import Callable, Iterable, Mapping

from derive.errors import UserError

MEMORY_MODES = ("standard", "checkpoint", "reversible")
"""How a built model keeps its activations for the backward pass (`create_model(..., memory=...)`,
derive.models.memory; `derive train --memory`)."""

Scalar = bool | int | float | str
ModelArgs = dict[str, Scalar | dict[str, Scalar]]

MAX_ARGS = 64  # more settings than any factory in derive takes
MAX_TEXT = 200  # characters of one NAME=VALUE
MAX_MAGNITUDE = 1e6  # |number|: a depth, width or coefficient past it is a typo, not a network
# Set by other options of `derive train`, never by --model-arg.
RESERVED = {
    "num_classes": "it comes from --dataset",
    "memory": "use --memory",
    "auxiliary": "use --auxiliary-weight",
}
_INT = re.compile(r"[+-]?\d+")
_SIMPLE = {"bool": bool, "int": int, "float": float, "str": str, "None": type(None)}


def parse_value(text: str) -> Scalar:
    """'true' → True, '56' → 56, '0.3' → 0.3, 'ones' or "'ones'" → 'ones'; numbers are bounded."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    value: int | float
    if _INT.fullmatch(text):
        value = int(text)
    else:
        try:
            value = float(text)
        except ValueError:
            return text
        if not math.isfinite(value):
            raise UserError(f"--model-arg: {text!r} is not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise UserError(
            f"--model-arg: {text} is beyond ±{MAX_MAGNITUDE:,.0f} (no depth, width or "
            "coefficient of a trainable network is that large)"
        )
    return value


def parse_model_arg(text: str) -> tuple[str, str | None, Scalar]:
    """'NAME=VALUE' → (NAME, None, value); 'NAME.KEY=VALUE' → (NAME, KEY, value)."""
    if len(text) > MAX_TEXT:
        raise UserError(f"--model-arg: at most {MAX_TEXT} characters, got {len(text)}")
    name, sep, raw = text.partition("=")
    name, _, key = name.strip().partition(".")
    if not sep or not _is_name(name) or (key and not _is_name(key)):
        raise UserError(
            f"--model-arg: expected NAME=VALUE or NAME.KEY=VALUE with Python names, got {text!r}"
        )
    if name in RESERVED:
        raise UserError(f"--model-arg {name}: not settable here ({RESERVED[name]})")
    return name, key or None, parse_value(raw.strip())


def collect(texts: Iterable[str]) -> ModelArgs:
    """The --model-arg options given, as the keyword arguments they ask for; UserError on repeats."""
    args: ModelArgs = {}
    for text in texts:
        name, key, value = parse_model_arg(text)
        if key is None:
            if name in args:
                raise UserError(f"--model-arg {name} is given twice")
            args[name] = value
            continue
        entries = args.setdefault(name, {})
        if not isinstance(entries, dict):
            raise UserError(f"--model-arg {name} is given both as a value and as {name}.{key}")
        if key in entries:
            raise UserError(f"--model-arg {name}.{key} is given twice")
        entries[key] = value
    check_model_args(args)
    return args


def check_model_args(args: object) -> None:
    """UserError unless `args` is what `collect` makes: names to bounded scalars or flat mappings."""
    if not isinstance(args, Mapping):
        raise UserError(f"model_args must be a mapping of names to values, got {args!r}")
    if len(args) > MAX_ARGS or sum(_size(v) for v in args.values()) > MAX_ARGS:
        raise UserError(f"--model-arg: at most {MAX_ARGS} settings")
    for name, value in args.items():
        if not isinstance(name, str) or not _is_name(name) or name in RESERVED:
            raise UserError(f"--model-arg: {name!r} cannot be set (see --help)")
        entries = value.items() if isinstance(value, Mapping) else [(None, value)]
        for key, item in entries:
            if key is not None and not (isinstance(key, str) and _is_name(key)):
                raise UserError(f"--model-arg {name}: key {key!r} is not a Python name")
            _check_scalar(f"{name}.{key}" if key else name, item)


def check_factory_arguments(
    factory: Callable[..., object], args: Mapping[str, object], model: str, hint: str = ""
) -> dict[str, object]:
    """`args` checked against `factory`'s signature, ints given for floats made floats.

    Names the factory does not take are refused, unless it takes **kwargs (then it is the judge);
    a scalar must match the parameter's annotation (or its default's type), a NAME.KEY entry must
    go to a parameter annotated as a Mapping.
    """
    try:
        parameters = dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return dict(args)
    open_ended = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    named = {
        n: p
        for n, p in parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n != "num_classes"
    }
    checked: dict[str, object] = {}
    for name, value in args.items():
        if name not in named:
            if open_ended:
                checked[name] = value
                continue
            takes = ", ".join(sorted(set(named) - set(RESERVED))) or "nothing besides num_classes"
            raise UserError(
                f"{model}: create_model takes no argument {name!r} (it takes: {takes}){hint}"
            )
        checked[name] = _checked_value(named[name], name, value, model)
    return checked


def describe(args: Mapping[str, object]) -> str:
    """'depth=56, coefficients.beta1=1.0': the arguments as --model-arg spells them."""
    parts = []
    for name, value in args.items():
        if isinstance(value, Mapping):
            parts += [f"{name}.{k}={v!r}" for k, v in value.items()]
        else:
            parts.append(f"{name}={value!r}")
    return ", ".join(parts)


def _checked_value(parameter: inspect.Parameter, name: str, value: object, model: str) -> object:
    annotation = _annotation_text(parameter.annotation)
    if isinstance(value, Mapping):
        inner = _mapping_values(annotation)
        if inner is None:
            raise UserError(
                f"{model}: create_model's {name} is not a mapping ({annotation or 'no annotation'}); "
                f"give it as {name}=VALUE"
            )
        return {k: _coerce(inner, f"{name}.{k}", v, model) for k, v in value.items()}
    if not isinstance(value, Scalar):
        return value  # a Python caller's own object: the factory judges it
    if annotation:
        allowed = _simple_types(annotation)
        if allowed is None:
            raise UserError(
                f"{model}: create_model's {name} takes {annotation}, which --model-arg cannot give "
                "(a bool, int, float or string, or NAME.KEY=VALUE for a mapping)"
            )
    else:
        default = parameter.default
        allowed = (type(default),) if isinstance(default, Scalar) else None
    return value if allowed is None else _coerce(allowed, name, value, model)


def _coerce(allowed: tuple[type, ...], name: str, value: object, model: str) -> object:
    if type(value) in allowed:
        return value
    if type(value) is int and float in allowed:
        return float(value)
    if not isinstance(value, Scalar):
        return value
    wanted = " or ".join(t.__name__ for t in allowed if t is not type(None))
    hint = f" (quote it for a string: {name}='{value}')" if str in allowed else ""
    raise UserError(
        f"{model}: create_model's {name} takes {wanted}, got {value!r} ({type(value).__name__}){hint}"
    )


def _annotation_text(annotation: object) -> str:
    """The annotation as source text ('' when there is none); `from __future__ import annotations`
    keeps it as a string already."""
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, type):
        return annotation.__name__
    text = str(annotation)
    for prefix in ("typing.", "collections.abc."):
        text = text.replace(prefix, "")
    return text


def _simple_types(annotation: str) -> tuple[type, ...] | None:
    """'int' → (int,); 'float | None' → (float, NoneType); anything else → None."""
    parts = [part.strip() for part in annotation.split("|")]
    parts = [part[9:-1].strip() if part.startswith("Optional[") else part for part in parts]
    if not all(part in _SIMPLE for part in parts):
        return None
    return tuple(_SIMPLE[part] for part in parts)


def _mapping_values(annotation: str) -> tuple[type, ...] | None:
    """The value types of a 'Mapping[str, V]' (or dict[str, V]) member of the annotation."""
    match = re.search(r"(?:Mapping|dict|Dict)\[\s*str\s*,\s*([\w\s|]+)\]", annotation)
    return _simple_types(match.group(1)) if match else None


def _check_scalar(where: str, value: object) -> None:
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise UserError(f"--model-arg {where}: at most {MAX_TEXT} characters")
        return
    if not isinstance(value, (bool, int, float)):
        raise UserError(
            f"--model-arg {where}: expected a bool, int, float or string, got {value!r}"
        )
    if not isinstance(value, bool) and not (math.isfinite(value) and abs(value) <= MAX_MAGNITUDE):
        raise UserError(
            f"--model-arg {where}: expected a finite number within ±{MAX_MAGNITUDE:,.0f}"
        )


def _size(value: object) -> int:
    return len(value) if isinstance(value, Mapping) else 1


def _is_name(text: str) -> bool:
    return text.isidentifier() and not keyword.iskeyword(text) and not text.startswith("__")
