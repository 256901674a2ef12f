"""`derive export MODEL|FILE.py --out FILE [--format pt2|onnx]`: a network for deployment."""

from __future__ import annotations

import argparse
import re

from derive.cli.argtypes import number
from derive.modelargs import collect

DESCRIPTION = """\
Export a network in eval mode, traced on one input batch: `pt2` is a torch.export program
(torch.export.save; load it with torch.export.load(FILE).module()), `onnx` an ONNX model from
torch.onnx.export(..., dynamo=True). The file is read back and run on the same input (torch for
pt2, onnxruntime for ONNX) and compared with the eager model; the largest absolute difference is
printed. The file appears only once that check passed.

MODEL is a zoo name (derive.models.list_models()) or a .py file defining create_model(num_classes,
...), such as the files of `derive network` and `derive nas network`; --model-arg passes keyword
arguments to a file's create_model, as in `derive train`. ONNX needs the optional packages onnx,
onnxscript and onnxruntime: pip install 'derive[export]'.
"""

EPILOG = """\
examples:
  derive export resnet56 --out resnet56.pt2
  derive export hbnet34 --out hbnet34.onnx --num-classes 100 --input-size 128
  derive export generated/heavyball_conv.py --model-arg depth=20 --out hb20.pt2
  derive export nets/darts_v2.py --format onnx --out darts_v2.onnx
exit status: 0 written, 1 the exported model disagrees with eager (nothing written),
2 bad input (one line on stderr, nothing written)."""


def input_size(text: str) -> tuple[int, int]:
    """'224' (square) or 'HxW': the input's height and width, each in [8, 1024]."""
    match = re.fullmatch(r"\s*(\d{1,4})\s*(?:[xX×]\s*(\d{1,4})\s*)?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected SIZE or HxW (8 to 1024 pixels), got {text!r}")
    height = int(match.group(1))
    width = int(match.group(2) or height)
    if not (8 <= height <= 1024 and 8 <= width <= 1024):
        raise argparse.ArgumentTypeError(f"expected SIZE or HxW (8 to 1024 pixels), got {text!r}")
    return height, width


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `derive export`."""
    parser = subparsers.add_parser(
        "export",
        help="export a network as a torch.export program (.pt2) or ONNX, checked against eager",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="zoo name or FILE.py defining create_model")
    parser.add_argument("--out", required=True, metavar="FILE", help="file to write")
    parser.add_argument(
        "--format",
        choices=("pt2", "onnx"),
        help="pt2 or onnx (default: from --out's suffix, .pt2 or .onnx)",
    )
    parser.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="keyword argument for a file's create_model, repeatable (NAME.KEY=VALUE for one "
        "entry of a mapping), as in `derive train`; a zoo name takes none",
    )
    parser.add_argument(
        "--num-classes",
        type=number(int, "a positive integer", 1, 100_000, "a classifier of bounded size"),
        metavar="N",
        help="classifier outputs (default: the model's, 10 for CIFAR, 1000 for ImageNet)",
    )
    parser.add_argument(
        "--input-size",
        type=input_size,
        metavar="SIZE|HxW",
        help="input height and width in pixels (default: 224 for ImageNet networks, else 32)",
    )
    parser.add_argument(
        "--batch",
        type=number(int, "a positive integer", 1, 256, "one traced batch"),
        default=1,
        metavar="N",
        help="batch size of the traced input; the program is exported for it (default 1)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from derive.export import export_model  # deferred: imports torch

    report = export_model(
        args.model,
        args.out,
        args.format,
        num_classes=args.num_classes,
        model_args=collect(args.model_arg),
        input_size=args.input_size,
        batch=args.batch,
    )
    shape = "x".join(map(str, report.input_shape))
    print(
        f"wrote {report.path} ({report.format}; input {shape}, output "
        f"{'x'.join(map(str, report.output_shape))}; max abs error against eager "
        f"{report.max_abs_error:.3g})"
    )
    return 0
