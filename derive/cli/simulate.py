"""`derive simulate`: the papers' simulation (SCIS'23 Table B1 = ACML'18 Table 2) on random targets."""

from __future__ import annotations

import argparse
import logging
import shlex

from derive.cli.argtypes import add_threads_option
from derive.cli.options_parser import HelpLayout, add_declared, given_values
from derive.cli.simulate_task import add_task_option, run_wellposed
from derive.experiments.simulation.config import QUICK, SimulationConfig

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
  derive simulate --task wellposed --out docs/results/simulation_wellposed --resume   the well-posed study
  derive simulate --threads 1 --compile --out docs/results/simulation     the full table
  derive simulate --threads 1 --compile --out docs/results/simulation --resume   ...after a stop
  derive simulate --algorithms gd,agd2 --depths 40 --epochs 200 --out runs/sim-d40
  derive simulate --optimizer sgd --lr 0.1 --batch-size 100 --out runs/sim-sgd
exit status: 0 done, 2 bad input (one line on stderr, nothing written), 130 interrupted by Ctrl-C, 143 by SIGTERM (both
record "interrupted" and keep what was done; continue with --resume)."""


HELP_GROUPS: HelpLayout = (
    (None, None, ("--task", "--quick", "--out", "--resume", "--force")),
    (
        "what the papers fix (defaults: theirs)",
        None,
        ("--algorithms", "--depths", "--samples", "--dim", "--epochs", "--activation"),
    ),
    (
        "what the papers do not say (defaults: ours)",
        None,
        ("--optimizer", "--lr", "--momentum", "--batch-size", "--bias", "--init", "--seed"),
    ),
    (
        "how to compute (results may differ in the last digits)",
        None,
        ("--device", "--threads", "--compile", "--eval-every"),
    ),
)
"""`derive simulate --help`'s groups in order; the options are declared on SimulationConfig's
fields (derive.experiments.simulation.config), except these, which only say where the files go."""


def _add_out(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="output folder (default: runs/simulation, or runs/simulation-quick with --quick)",
    )


def _add_resume(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a stopped run in OUT: keep its finished runs, train the rest "
        "(the other options must be the ones it was started with)",
    )


def _add_force(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--force",
        action="store_true",
        help="start over in an OUT that already holds a simulation, deleting its files",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `derive simulate`, its options built from SimulationConfig's declarations."""

    p = subparsers.add_parser(
        "simulate",
        help="the papers' simulation: fc networks of 5 algorithms fitting random targets",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    extras = {
        "--out": _add_out,
        "--resume": _add_resume,
        "--force": _add_force,
        "--threads": add_threads_option,
        "--task": add_task_option,
    }
    add_declared(p, SimulationConfig, HELP_GROUPS, extras)
    p.set_defaults(run=run)


def build_config(args: argparse.Namespace) -> SimulationConfig:
    """The SimulationConfig of parsed `args`: --quick values first, the options typed over them."""

    values: dict[str, object] = dict(QUICK) if args.quick else {}
    values.update(given_values(args, SimulationConfig))
    return SimulationConfig(**values, threads=args.threads)  # type: ignore[arg-type]


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
    if args.task == "wellposed":
        return run_wellposed(args, SimulationConfig)
    # deferred: ~0.05 s of imports, kept out of `derive --help`
    from derive.experiments.simulation import files as simfiles

    # deferred: imports torch and SymPy
    from derive.experiments.simulation.run import run_simulation

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
