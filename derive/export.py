"""`derive export`: a network as a torch.export program (.pt2) or an ONNX file, checked against eager.

The model (a zoo name or a file defining create_model, as `derive train` takes it) is built in eval
mode and traced on one input batch of the given size. The file is written to a temporary name in
the target's folder, read back and run on the same input (torch.export.load for pt2, onnxruntime
for ONNX), compared with the eager output, and only then renamed into place: a failed export or
check leaves no file behind.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from derive.errors import UserError
from derive.fsutil import output_file
from derive.models import model_entry, resolve_model

FORMATS = ("pt2", "onnx")
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
INSTALL_HINT = "install derive[export] (pip install 'derive[export]')"
CHATTY_LOGGERS = (
    "onnxscript",
    "onnx_ir",
    "torch.onnx",
    "torch.export",
    "torch.fx",
    "torch._export",
)
"""Loggers that report each pass at INFO, or warn while a trace fails (the failure is reported in
one line anyway); quiet (errors only) unless derive runs with -v."""
RELATIVE_TOLERANCE = 1e-3
"""Largest |exported − eager| accepted, relative to max(1, max |eager|): far above float32
reordering, far below a wrong graph."""


@dataclass(frozen=True)
class ExportReport:
    """What was written and how close its output is to the eager model's."""

    path: Path
    format: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    max_abs_error: float


def format_for(out: str | os.PathLike[str], requested: str | None) -> str:
    """The format asked for, else the one --out's suffix names (.pt2, .onnx); UserError otherwise."""
    if requested is not None:
        if requested not in FORMATS:
            raise UserError(f"unknown format {requested!r}; choose one of {', '.join(FORMATS)}")
        return requested
    suffix = Path(out).suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    raise UserError(f"give --format ({' or '.join(FORMATS)}): --out {str(out)!r} names neither")


def require_onnx() -> None:
    """UserError naming what to install unless ONNX export and its check can run."""
    missing = []
    for package in ONNX_PACKAGES:
        try:
            importlib.import_module(package)
        except ImportError:
            missing.append(package)
    if missing:
        raise UserError(f"--format onnx needs {', '.join(missing)}: {INSTALL_HINT}")


def default_input_size(spec: str) -> int:
    """224 for the zoo's ImageNet networks, else 32 (CIFAR)."""
    if spec.endswith(".py"):
        return 32

    return 224 if model_entry(spec).dataset == "imagenet" else 32


def build_model(spec: str, num_classes: int | None, model_args: Mapping[str, object]) -> nn.Module:
    """The model in eval mode (derive.models.resolve_model); a user's file failing is bad input."""

    try:
        model = resolve_model(spec, num_classes=num_classes, **model_args)
    except UserError:
        raise
    except (Exception, SystemExit) as exc:
        if not spec.endswith(".py"):
            raise  # a zoo model failing is a bug in derive
        raise UserError(f"{spec}: create_model failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise UserError(
            f"{spec}: create_model returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model.eval()


def eager_output(model: nn.Module, spec: str, x: torch.Tensor) -> torch.Tensor:
    """The model's output on `x` (UserError when the model cannot take that input)."""
    shape = "x".join(map(str, x.shape))
    try:
        with torch.no_grad():
            out = model(x)
    except (Exception, SystemExit) as exc:
        raise UserError(
            f"model {spec} fails on a {shape} input (see --input-size): {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(out, torch.Tensor):
        raise UserError(
            f"model {spec} returns {type(out).__name__} on a {shape} input, not a tensor"
        )
    return out


@contextlib.contextmanager
def staged(target: Path) -> Iterator[Path]:
    """A temporary path next to `target`, renamed onto it when the block succeeds, else removed.
    It ends in `target`'s suffix (torch.export.save and load expect .pt2)."""
    fd, name = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(fd)
    tmp = Path(name)
    mode = target.stat().st_mode & 0o777 if target.is_file() else 0o666 & ~_umask()
    try:
        yield tmp
        os.chmod(tmp, mode)  # mkstemp makes 0600; a replaced file keeps its own mode
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_pt2(model: nn.Module, x: torch.Tensor, path: Path) -> torch.Tensor:
    """torch.export the model on `x`, save it at `path`, and return the reloaded program's output."""
    program = torch.export.export(model, (x,))
    torch.export.save(program, str(path))
    loaded = torch.export.load(str(path))
    with torch.no_grad():
        return loaded.module()(x)


def write_onnx(model: nn.Module, x: torch.Tensor, path: Path) -> torch.Tensor:
    """Export through torch.onnx (dynamo=True) to `path`; return onnxruntime's output on `x`."""
    import onnxruntime

    program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
    program.save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    return torch.from_numpy(session.run(None, feed)[0])


@contextlib.contextmanager
def quiet_exporters(names: tuple[str, ...]) -> Iterator[None]:
    """Raise the loggers `names` to ERROR and hold what the exporters print on stderr (torch.export
    prints the partial graph of a failed trace) for the block, unless debug logging is on: a
    failure is reported in one line."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def check_close(got: torch.Tensor, expected: torch.Tensor, what: str) -> float:
    """max |got − expected|; RuntimeError when shapes differ or it exceeds RELATIVE_TOLERANCE."""
    if tuple(got.shape) != tuple(expected.shape):
        raise RuntimeError(
            f"{what} output has shape {tuple(got.shape)}, eager {tuple(expected.shape)}"
        )
    error = (got.float() - expected.float()).abs().max().item() if got.numel() else 0.0
    scale = max(1.0, expected.abs().max().item() if expected.numel() else 0.0)
    if not math.isfinite(error) or error > RELATIVE_TOLERANCE * scale:
        raise RuntimeError(
            f"{what} output differs from eager by {error:.3g} (limit {RELATIVE_TOLERANCE * scale:.3g})"
        )
    return error


def export_model(
    spec: str,
    out: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    num_classes: int | None = None,
    model_args: Mapping[str, object] | None = None,
    input_size: tuple[int, int] | None = None,
    batch: int = 1,
) -> ExportReport:
    """Export `spec` to `out` as pt2 or ONNX, checked against eager (every input check first)."""
    fmt = format_for(out, fmt)
    if fmt == "onnx":
        require_onnx()
    target = output_file(out, "--out")
    model = build_model(spec, num_classes, model_args or {})
    height, width = input_size or (default_input_size(spec),) * 2
    x = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(0))
    expected = eager_output(model, spec, x)
    with staged(target) as tmp:
        try:
            with quiet_exporters(CHATTY_LOGGERS):
                got = (write_pt2 if fmt == "pt2" else write_onnx)(model, x, tmp)
        except (Exception, SystemExit) as exc:
            if not spec.endswith(".py"):
                raise  # a zoo model that does not export is a bug in derive
            raise UserError(
                f"{spec}: cannot export to {fmt}: {type(exc).__name__}: {exc}"
            ) from None
        error = check_close(got, expected, fmt)
    return ExportReport(Path(out), fmt, tuple(x.shape), tuple(expected.shape), error)


__all__ = ["FORMATS", "INSTALL_HINT", "ExportReport", "export_model", "format_for", "require_onnx"]
