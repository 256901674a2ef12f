"""`derive simulate`: the papers' simulation (SCIS'23 Table B1 = ACML'18 Table 2) on random targets."""

from __future__ import annotations

import argparse
import logging
import shlex

from derive.cli.argtypes import add_threads_option, number
from derive.limits import DEPTH, SEED, SIM_DIM, SIM_EPOCHS, SIM_SAMPLES

DESCRIPTION = """\
Train the fully connected networks inspired by GD (7), HB (10, beta = 0.3), AGD (11), AGD all-history
(12, "AGD2") and ADMM (13) (SCIS'23 numbering; untied weights, from generated/<algo>_fc.py) to map
z0 to f, with z0 and f independent N(0, I) samples, and report the training MSE after the last epoch
beside the papers' printed Table B1 / Table 2.

The papers fix: sigmoid, 10,000 pairs in dimension 100, depths 10/20/30/40, 1,000 epochs.
They do not say how they trained; our defaults (each an option below): Adam, lr 1e-3, full batch
(1,000 epochs = 1,000 Adam steps on the whole objective), no bias, PyTorch's default nn.Linear init.

OUT receives curves.csv (every evaluation of every run) and simulation.json as the run goes, then
final.csv, simulation.md (our table beside the printed one, every setting) and simulation.png.
The full run takes hours on a CPU; --quick runs a reduced version in about a minute."""

EPILOG = """\
examples:
  derive simulate --quick                                   reduced run into runs/simulation-quick
  derive simulate --threads 1 --compile --out docs/results/simulation     the full table
  derive simulate --threads 1 --compile --out docs/results/simulation --resume   ...after a stop
  derive simulate --algorithms gd,agd2 --depths 40 --epochs 200 --out runs/sim-d40
  derive simulate --optimizer sgd --lr 0.1 --batch-size 100 --out runs/sim-sgd
exit status: 0 done, 2 bad input (one line on stderr, nothing written), 130 interrupted by Ctrl-C, 143 by SIGTERM (both
record "interrupted" and keep what was done; continue with --resume)."""


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 10,20, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    if max(values) > DEPTH.high:
        raise argparse.ArgumentTypeError(
            f"expected depths of at most {DEPTH.high:,} ({DEPTH.reason}), got {text!r}"
        )
    return values


def _names(text: str) -> tuple[str, ...]:
    values = tuple(part.strip() for part in text.split(",") if part.strip())
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated algorithm names")
    return values


def _batch(text: str) -> int | None:
    if text.strip().lower() == "full":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'full', got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'full', got {text!r}")
    if value > SIM_SAMPLES.high:
        raise argparse.ArgumentTypeError(
            f"expected a batch of at most {SIM_SAMPLES.high:,} (the most --samples), got {text!r}"
        )
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `derive simulate` and its options."""
    from derive.experiments.simconfig import ACTIVATIONS, DEVICES, INITS, OPTIMIZERS

    p = subparsers.add_parser(
        "simulate",
        help="the papers' simulation: fc networks of 5 algorithms fitting random targets",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    epochs = number(int, "a positive integer", limit=SIM_EPOCHS)
    p.add_argument(
        "--quick",
        action="store_true",
        help="reduced run, about a minute: 1,000 samples, 100 epochs, depths 10,20 "
        "(explicit options still override)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="output folder (default: runs/simulation, or runs/simulation-quick with --quick)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue a stopped run in OUT: keep its finished runs, train the rest "
        "(the other options must be the ones it was started with)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="start over in an OUT that already holds a simulation, deleting its files",
    )
    g = p.add_argument_group("what the papers fix (defaults: theirs)")
    g.add_argument(
        "--algorithms",
        type=_names,
        default=None,
        metavar="A,B",
        help="gd, heavyball (hb), nesterov (agd), nesterov2 (agd2), admm (default: all five)",
    )
    g.add_argument(
        "--depths",
        type=_int_list,
        default=None,
        metavar="D,D",
        help=f"network depths (default: 10,20,30,40); each {DEPTH.help()}",
    )
    g.add_argument(
        "--samples",
        type=number(int, "a positive integer", limit=SIM_SAMPLES),
        default=None,
        metavar="N",
        help="training pairs (default: 10000)",
    )
    g.add_argument(
        "--dim",
        type=number(int, "a positive integer", limit=SIM_DIM),
        default=None,
        metavar="N",
        help="dimension of z0 and f (default: 100)",
    )
    g.add_argument("--epochs", type=epochs, default=None, metavar="N", help="(default: 1000)")
    g.add_argument(
        "--activation", choices=ACTIVATIONS, default="sigmoid", help="Φ (default: sigmoid)"
    )
    g = p.add_argument_group("what the papers do not say (defaults: ours)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="(default: adam)")
    g.add_argument(
        "--lr",
        type=number(float, "a positive number"),
        default=1e-3,
        help="learning rate (default: 0.001)",
    )
    g.add_argument(
        "--momentum",
        type=number(float, "a number in [0, 1)"),
        default=0.9,
        help="SGD momentum (default: 0.9; ignored by adam)",
    )
    g.add_argument(
        "--batch-size",
        type=_batch,
        default=None,
        metavar="B|full",
        help="mini-batch size, or 'full' for the whole training set (default: full)",
    )
    g.add_argument(
        "--bias",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="a bias in each layer's linear map (default: no, as in T(z) = Φ(Wz))",
    )
    g.add_argument(
        "--init",
        choices=INITS,
        default="default",
        help="weight init: PyTorch's nn.Linear default U(±1/√dim), xavier, orthogonal "
        "(default: default)",
    )
    g.add_argument(
        "--seed",
        type=number(int, "an integer >= 0", limit=SEED),
        default=0,
        help="seed of the data, of each run's init and batch order (default: 0)",
    )
    g = p.add_argument_group("how to compute (results may differ in the last digits)")
    g.add_argument(
        "--device", choices=DEVICES, default="auto", help="auto: CUDA if available (default: auto)"
    )
    add_threads_option(g)
    g.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile each network (minutes of compiling; then AGD2 runs about 10x, "
        "ADMM 1.7x faster on the CPU)",
    )
    g.add_argument(
        "--eval-every",
        type=epochs,
        default=None,
        metavar="N",
        help="epochs between evaluations of the whole training set (default: epochs/50)",
    )
    p.set_defaults(run=run)


def build_config(args: argparse.Namespace):  # -> SimulationConfig (import kept lazy)
    """The SimulationConfig of parsed `args`: --quick values first, explicit options over them."""
    from derive.experiments.simconfig import QUICK, SimulationConfig

    values: dict[str, object] = dict(QUICK) if args.quick else {}
    for name in ("algorithms", "depths", "samples", "dim", "epochs"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    return SimulationConfig(
        **values,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        bias=args.bias,
        init=args.init,
        activation=args.activation,
        seed=args.seed,
        device=args.device,
        compile=args.compile,
        threads=args.threads,
        eval_every=args.eval_every,
        quick=args.quick,
    )


def command_for(config, out: str) -> str:
    """An explicit `derive simulate` command line that reproduces `config` (every option spelled out)."""
    c = config
    parts = ["derive", "simulate"]
    if c.quick:
        parts.append("--quick")
    parts += [
        "--algorithms",
        ",".join(c.algorithms),
        "--depths",
        ",".join(map(str, c.depths)),
        "--samples",
        str(c.samples),
        "--dim",
        str(c.dim),
        "--epochs",
        str(c.epochs),
        "--activation",
        c.activation,
        "--optimizer",
        c.optimizer,
        "--lr",
        repr(c.lr),
    ]
    if c.optimizer == "sgd":
        parts += ["--momentum", repr(c.momentum)]
    parts += ["--batch-size", "full" if c.batch_size is None else str(c.batch_size)]
    parts += ["--bias" if c.bias else "--no-bias", "--init", c.init, "--seed", str(c.seed)]
    parts += ["--device", c.device]
    if c.threads:
        parts += ["--threads", str(c.threads)]
    if c.compile:
        parts.append("--compile")
    if c.eval_every:
        parts += ["--eval-every", str(c.eval_every)]
    parts += ["--out", out]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    """Validate everything, then train and write OUT; print where the table is."""
    from derive.experiments import simfiles
    from derive.experiments.simulation import run_simulation

    config = build_config(args)
    out = args.out or ("runs/simulation-quick" if config.quick else "runs/simulation")
    result = run_simulation(
        config,
        out_dir=out,
        command=command_for(config, out),
        resume=args.resume,
        force=args.force,
    )
    failed = [r for r in result.runs if r.status != "completed"]
    logging.getLogger("derive.simulate").info(
        "simulate: done in %.0f s%s",
        result.wall_seconds,
        f"; {len(failed)} run(s) diverged" if failed else "",
    )
    print(f"{out}/{simfiles.MARKDOWN}")
    return 0
