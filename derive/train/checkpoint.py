"""checkpoint.pt: everything a run needs to continue exactly, written atomically after each epoch,
every --checkpoint-every minutes (or steps) within an epoch, and when the run is interrupted.

Holds the model, optimizer and scheduler states, the RNG states, the number of completed epochs, the
metrics history (so metrics.csv can be rewritten consistently), the recipe, the model's identity and
the data's fingerprint (so `--resume` can refuse a checkpoint made for something else). A checkpoint
written within an epoch also holds its `position`: the epoch, the steps done in it, and what each
process needs to continue that epoch exactly (its RNG state, its sums of the epoch's metrics so far,
its warm-up state). Checkpoints written before mid-epoch checkpoints existed have no `position`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from derive.errors import UserError
from derive.fsutil import atomic_write_bytes
from derive.rundir import changed_settings
from derive.train.options import Every as Every  # re-exported: defined without torch
from derive.train.options import parse_every as parse_every
from derive.train.runfiles import EXTRA_COLUMNS, METRICS_HEADER
from derive.train.steplog import STEPS_HEADER

FORMAT = "derive-train-checkpoint/1"


def save_checkpoint(path: Path, state: Mapping[str, object]) -> None:
    """Serialize `state` (plus the format tag) and write it atomically."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, search_history: Sequence[str] = ()) -> dict[str, object]:
    """Read a checkpoint written by save_checkpoint (tensors land on the CPU); UserError if unreadable.

    Every field is checked here (check_fields), before anything uses it: a damaged field is one line
    naming the checkpoint and the field. An architecture search's checkpoint is read only by the
    search, which gives the columns of its history rows as `search_history`
    (derive.nas.searchfiles.METRICS_HEADER); anywhere else it is refused as not a training one.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"no checkpoint at {str(path)!r}") from None
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise UserError(
            f"cannot read checkpoint {str(path)!r}: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{str(path)!r} is not a derive training checkpoint")
    if state.get("kind") == _SEARCH_KIND and not search_history:
        raise UserError(
            f"{str(path)!r} is an architecture search's checkpoint, not a training one "
            "(`derive nas search --resume` continues it)"
        )
    try:
        check_fields(state, search_history)
    except BadField as exc:
        raise _damaged(path, str(exc)) from None
    return state


def _damaged(path: Path, problem: str) -> UserError:
    return UserError(
        f"checkpoint {str(path)!r} is damaged: {problem}; use --force to start over, or another --out"
    )


def check_optimizer_fits(
    path: Path, optimizer: torch.optim.Optimizer, field: str = "optimizer"
) -> None:
    """After load_state_dict: UserError unless every per-parameter tensor has its parameter's shape
    (torch does not check, and a momentum buffer of another shape fails only at the first step)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, param in enumerate(params):
        for name, item in optimizer.state.get(param, {}).items():
            if isinstance(item, torch.Tensor) and item.dim() > 0 and item.shape != param.shape:
                raise _damaged(
                    path,
                    f"{field}['state'][{index}][{name!r}] has shape {tuple(item.shape)}, "
                    f"expected {tuple(param.shape)} (its parameter's)",
                )


class BadField(Exception):
    """A checkpoint field that does not hold what derive writes there (the message names it)."""


Check = Callable[[object, str], None]
_SEARCH_KIND = "nas-search"  # what `derive nas search` writes as "kind"


def check_fields(state: Mapping[str, object], search_history: Sequence[str] = ()) -> None:
    """BadField unless every field of a training (or architecture-search) checkpoint has its type and
    shape; a search's history rows have the columns `search_history`."""
    search = state.get("kind") == _SEARCH_KIND
    fields = _SEARCH_FIELDS if search else _TRAIN_FIELDS
    for name, (check, required) in {**_COMMON_FIELDS, **fields}.items():
        if name in state:
            check(state[name], name)
        elif required:
            raise BadField(f"{name} is missing")
    _check_history(state["history"], "history", tuple(search_history) if search else METRICS_HEADER)
    rows = len(state["history"])  # type: ignore[arg-type]
    _require(
        state["epoch"] == rows, "epoch", f"{rows} (the number of history rows)", state["epoch"]
    )
    if not search:
        _check_position_epoch(state)
        groups = len(state["optimizer"]["param_groups"])  # type: ignore[index]
        lrs = state["scheduler"]["base_lrs"]  # type: ignore[index]
        _require(
            len(lrs) == groups, "scheduler['base_lrs']", f"{groups} rates (one per group)", lrs
        )


def _describe(value: object) -> str:
    """A short phrase for what a field holds: its type, and a tensor's dtype and shape."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, (bool, int, float)) and not (
        isinstance(value, int) and value.bit_length() > 64
    ):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, str):
        return f"str {value[:30]!r}" + ("..." if len(value) > 30 else "")
    return f"a {type(value).__name__}"


def _require(ok: bool, field: str, expected: str, value: object) -> None:
    if not ok:
        raise BadField(f"{field} is {_describe(value)}, expected {expected}")


def _present(key: object, mapping: Mapping[object, object], field: str) -> None:
    if key not in mapping:
        raise BadField(f"{field} is missing")


def _is_number(value: object) -> bool:
    return type(value) in (int, float)


def _integer(low: int) -> Check:
    def check(value: object, field: str) -> None:
        _require(type(value) is int and value >= low, field, f"an integer >= {low}", value)  # type: ignore[operator]

    return check


def _number(value: object, field: str) -> None:
    _require(_is_number(value), field, "a number", value)


def _string(value: object, field: str) -> None:
    _require(isinstance(value, str), field, "a string", value)


def _plain(value: object, field: str, depth: int = 0) -> None:
    """None, bool, number, string, or lists/tuples/dicts of them (what a recipe or a setting holds)."""
    if value is None or type(value) in (bool, int, float, str):
        return
    _require(isinstance(value, (list, tuple, dict)) and depth < 8, field, "plain data", value)
    items = value.items() if isinstance(value, dict) else enumerate(value)  # type: ignore[union-attr]
    for key, item in items:
        _plain(item, f"{field}[{key!r}]", depth + 1)


def _mapping(value: object, field: str) -> dict:  # type: ignore[type-arg]
    _require(isinstance(value, dict), field, "a dictionary", value)
    return value  # type: ignore[return-value]


def _list(value: object, field: str) -> list:  # type: ignore[type-arg]
    _require(isinstance(value, list), field, "a list", value)
    return value  # type: ignore[return-value]


def _named_tensors(value: object, field: str) -> None:
    """A module's state dict: names to tensors (load_state_dict reports names and shapes that differ)."""
    for key, item in _mapping(value, field).items():
        _require(isinstance(key, str), f"{field} key", "a parameter name", key)
        _require(isinstance(item, torch.Tensor), f"{field}[{key!r}]", "a tensor", item)


def _recipe(value: object, field: str) -> None:
    recipe = _mapping(value, field)
    _plain(recipe, field)
    if "epochs" in recipe:
        _integer(0)(recipe["epochs"], f"{field}['epochs']")


_GROUP_NUMBERS = ("lr", "momentum", "dampening", "weight_decay", "initial_lr", "eps", "alpha")
_GROUP_FLAGS = (
    "nesterov",
    "maximize",
    "foreach",
    "differentiable",
    "fused",
    "capturable",
    "amsgrad",
)


def _optimizer(value: object, field: str) -> None:
    """An optimizer's state dict: per-parameter tensors, and groups of parameter indices and settings."""
    optimizer = _mapping(value, field)
    for key in ("state", "param_groups"):
        _present(key, optimizer, f"{field}[{key!r}]")
    for index, entry in _mapping(optimizer["state"], f"{field}['state']").items():
        where = f"{field}['state'][{index!r}]"
        _require(type(index) is int, f"{where} key", "a parameter index", index)
        for name, item in _mapping(entry, where).items():
            ok = item is None or isinstance(item, torch.Tensor) or _is_number(item)
            _require(ok, f"{where}[{name!r}]", "a tensor or a number", item)
    for i, group in enumerate(_list(optimizer["param_groups"], f"{field}['param_groups']")):
        where = f"{field}['param_groups'][{i}]"
        group = _mapping(group, where)
        params = group.get("params")
        ok = isinstance(params, list) and all(type(p) is int for p in params)
        _require(ok, f"{where}['params']", "a list of parameter indices", params)
        for key, item in group.items():
            if key in _GROUP_NUMBERS:
                _number(item, f"{where}[{key!r}]")
            elif key in _GROUP_FLAGS:
                _require(item is None or type(item) is bool, f"{where}[{key!r}]", "a flag", item)
            elif key == "betas":
                ok = (
                    isinstance(item, (list, tuple))
                    and len(item) == 2
                    and all(map(_is_number, item))
                )
                _require(ok, f"{where}['betas']", "two numbers", item)
            else:
                _plain(item, f"{where}[{key!r}]")


def _scheduler(value: object, field: str) -> None:
    """An lr scheduler's state dict (MultiStepLR or the cosine LambdaLR)."""
    scheduler = _mapping(value, field)
    _plain({k: v for k, v in scheduler.items() if k != "milestones"}, field)
    _integer(-1)(scheduler.get("last_epoch"), f"{field}['last_epoch']")
    for key in ("base_lrs", "_last_lr"):
        if key in scheduler or key == "base_lrs":
            rates = scheduler.get(key)
            ok = isinstance(rates, list) and all(map(_is_number, rates))
            _require(ok, f"{field}[{key!r}]", "a list of rates", rates)
    if "_step_count" in scheduler:
        _integer(0)(scheduler["_step_count"], f"{field}['_step_count']")
    if "gamma" in scheduler:
        _number(scheduler["gamma"], f"{field}['gamma']")
    if "milestones" in scheduler:
        milestones = _mapping(scheduler["milestones"], f"{field}['milestones']")
        ok = all(type(k) is int and type(v) is int for k, v in milestones.items())
        _require(ok, f"{field}['milestones']", "epochs with counts", milestones)
    if "lr_lambdas" in scheduler:
        for i, item in enumerate(_list(scheduler["lr_lambdas"], f"{field}['lr_lambdas']")):
            _require(
                item is None or isinstance(item, dict),
                f"{field}['lr_lambdas'][{i}]",
                "a dictionary",
                item,
            )


def _byte_state(value: object, field: str, size: int | None = None) -> None:
    ok = isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 1
    expected = "a 1-d uint8 tensor"
    if size is not None:
        ok, expected = ok and value.numel() == size, f"{expected} of {size} bytes"  # type: ignore[union-attr]
    _require(ok, field, expected, value)


def _rng(value: object, field: str) -> None:
    """The random-number state: torch's CPU generator, and CUDA's per device where it was in use."""
    rng = _mapping(value, field)
    _present("torch", rng, f"{field}['torch']")
    _byte_state(rng["torch"], f"{field}['torch']", torch.get_rng_state().numel())
    if rng.get("cuda") is not None:
        cuda = rng["cuda"]
        _require(isinstance(cuda, (list, tuple)), f"{field}['cuda']", "a list of states", cuda)
        for i, item in enumerate(cuda):  # type: ignore[arg-type]
            _byte_state(item, f"{field}['cuda'][{i}]")


def _warmup(value: object, field: str) -> None:
    """The warm-up's state: steps taken, the step it ended at (or None), recent (wrong, seen) pairs."""
    warmup = _mapping(value, field)
    _integer(0)(warmup.get("step"), f"{field}['step']")
    if warmup.get("ended_at") is not None:
        _integer(0)(warmup["ended_at"], f"{field}['ended_at']")
    recent = warmup.get("recent") or []
    ok = isinstance(recent, list) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(type(v) is int for v in p)
        for p in recent
    )
    _require(ok, f"{field}['recent']", "a list of (wrong, seen) pairs of integers", recent)


def _steps(value: object, field: str) -> None:
    ok = (
        isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and value.dim() == 2
        and value.shape[1] == len(STEPS_HEADER)
    )
    _require(ok, field, f"a float tensor of {len(STEPS_HEADER)} columns", value)


def _rank_position(value: object, field: str) -> None:
    """One process's part of a position within an epoch."""
    entry = _mapping(value, field)
    _rng(entry.get("rng"), f"{field}['rng']")
    _number(entry.get("loss_sum"), f"{field}['loss_sum']")
    for key in ("correct", "seen"):
        _integer(0)(entry.get(key), f"{field}[{key!r}]")
    _warmup(entry.get("warmup"), f"{field}['warmup']")


def _position(value: object, field: str) -> None:
    """Where within an epoch a checkpoint was written (None: at the end of an epoch)."""
    if value is None:
        return
    position = _mapping(value, field)
    for key in ("epoch", "step", "steps", "world_size"):
        _integer(1)(position.get(key), f"{field}[{key!r}]")
    for key in ("seconds", "lr"):
        _number(position.get(key), f"{field}[{key!r}]")
    step, steps = position["step"], position["steps"]
    _require(step < steps, f"{field}['step']", f"fewer than the epoch's {steps} steps", step)
    ranks = _list(position.get("ranks"), f"{field}['ranks']")
    world = position["world_size"]
    _require(len(ranks) == world, f"{field}['ranks']", f"{world} entries (one per process)", ranks)
    for rank, entry in enumerate(ranks):
        _rank_position(entry, f"{field}['ranks'][{rank}]")


def _check_position_epoch(state: Mapping[str, object]) -> None:
    """A mid-epoch position lies in the epoch after the completed ones."""
    position = state.get("position")
    if isinstance(position, dict):
        expected = state["epoch"] + 1  # type: ignore[operator]
        _require(
            position["epoch"] == expected,
            "position['epoch']",
            f"{expected} (the epoch after the completed ones)",
            position["epoch"],
        )


def _records(value: object, field: str) -> None:
    for i, item in enumerate(_list(value, field)):
        _plain(_mapping(item, f"{field}[{i}]"), f"{field}[{i}]")


def _check_history(value: object, field: str, header: tuple[str, ...]) -> None:
    """A row per completed epoch, in order, with a number for every metrics column."""
    for i, row in enumerate(_list(value, field)):
        where = f"{field}[{i}]"
        row = _mapping(row, where)
        for key in header:
            _present(key, row, f"{where}[{key!r}]")
        _require(
            row["epoch"] == i + 1 and type(row["epoch"]) is int,
            f"{where}['epoch']",
            str(i + 1),
            row["epoch"],
        )
        for key, item in row.items():
            if key == "genotype":
                _plain(item, f"{where}['genotype']")
            elif key in header or key in EXTRA_COLUMNS or key == "cpu_seconds":
                _number(item, f"{where}[{key!r}]")


def _arch_batches(value: object, field: str) -> None:
    batches = _mapping(value, field)
    for key in ("cycle", "position"):
        _integer(0)(batches.get(key), f"{field}[{key!r}]")


_COMMON_FIELDS: dict[str, tuple[Check, bool]] = {
    "epoch": (_integer(0), True),
    "model": (_named_tensors, True),
    "rng": (_rng, True),
    "history": (_list, True),
    "sessions": (_records, False),
    "started_at": (_string, False),
    "recipe": (_recipe, True),
    "model_id": (_string, True),
    "data_id": (_string, True),
}
_TRAIN_FIELDS: dict[str, tuple[Check, bool]] = {
    "optimizer": (_optimizer, True),
    "scheduler": (_scheduler, True),
    "normalization": (_plain, False),
    "warmup": (_warmup, False),  # older checkpoints have neither a warm-up nor a step log
    "steps": (_steps, False),
    "position": (_position, False),  # only in checkpoints written within an epoch
}
_SEARCH_FIELDS: dict[str, tuple[Check, bool]] = {
    "weight_optimizer": (_optimizer, True),
    "arch_optimizer": (_optimizer, True),
    "arch_batches": (_arch_batches, True),
}


# Recipe options a resumed run may change: more (or fewer, down to those done) epochs extend the run.
EXTENDABLE = frozenset({"epochs"})


def incompatibilities(
    state: Mapping[str, object],
    recipe: Mapping[str, object],
    model_id: str,
    data_id: str,
    defaults: Mapping[str, object] | None = None,
) -> list[str]:
    """What differs between a checkpoint and the run asked for (beyond EXTENDABLE), one phrase each.

    An option the checkpoint does not record (it predates the option) counts as its default in
    `defaults`: a new option's default is the behaviour from before it existed.
    """
    problems = []
    if state.get("model_id") != model_id:
        problems.append(f"model {state.get('model_id')} (checkpoint) vs {model_id} (now)")
    if state.get("data_id") != data_id:
        problems.append("the training/test data differ (different dataset, subset or files)")
    old = state.get("recipe") or {}
    assert isinstance(old, Mapping)
    old = {**(defaults or {}), **old}
    for key, then, now in changed_settings(old, recipe, EXTENDABLE):
        problems.append(f"{key} {then!r} (checkpoint) vs {now!r} (now)")
    return problems


def check_compatible(
    path: Path,
    state: Mapping[str, object],
    recipe: Mapping[str, object],
    model_id: str,
    data_id: str,
    defaults: Mapping[str, object] | None = None,
) -> None:
    """UserError naming every difference if `state` was not made by the same model, data and recipe."""
    problems = incompatibilities(state, recipe, model_id, data_id, defaults)
    if problems:
        raise UserError(
            f"cannot --resume from {str(path)!r}: it was made with different settings: {'; '.join(problems)}. "
            "Use --force to start over, or another --out"
        )
