"""`derive stability run|probe|report`: does HBNet train where a deep ResNet needs warm-up?"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable

from derive.cli.argtypes import add_threads_option, number
from derive.errors import UserError
from derive.experiments.stability.plan import ALL_ARMS, arm
from derive.fsutil import ensure_output_dir
from derive.limits import PROBE_STEPS, STABILITY_EPOCHS, STUDY_WORKERS
from derive.train.data import load_cifar

DESCRIPTION = """\
The papers (SCIS'23 §8 after Table 1; ACML'18 §6) say a deep ResNet (110 layers) "requires multiple
trials to achieve a converged result" and a warm-up, while HBNet trained with the same recipe
converges "with training only once". This command measures that claim with statistics.

  run     trains every arm of the study over many seeds, each a plain `derive train` run folder in
          STUDY/runs/ARM-sSEED (the papers' recipe, lr 0.1 throughout: the first epochs of the
          papers' 300-epoch schedule), with --log-steps, plus probes of the first steps;
          resumable (a finished run is skipped), several worker processes
  probe   replays the first steps of one run with forward hooks: std of every block's output z_k,
          the loss and the gradient norm per step (STUDY/probes/ARM-sSEED.json)
  report  writes the results doc (mean ± std per arm, failed-run counts, tests) and its figures
          from the run and probe files

Arms: ResNet and HBNet at depths 20, 56, 110; ResNet-110 with He et al.'s warm-up; DenseNet-40 and
AGDNet-40; ResNet-56 with one choice of the recipe changed at a time (projection shortcut,
PyTorch's init for the convolutions or the classifier, one crop per batch); and HBNet-110 under
each reading the papers leave open (z₋₁ = 0, no ReLU after the sum, learnable β₂, all three). The criteria (failed to
learn, spike) are fixed in derive/experiments/stability/plan.py and printed in the doc."""

EPILOG = """\
examples:
  derive stability run --data-dir ../shared/data/cifar-10-head --out docs/results/stability
  derive stability run --data-dir DIR --out runs/stab --arms resnet110,hbnet110 --seeds 0-19
  derive stability probe docs/results/stability/runs/resnet110-s0 --steps 20 --out probe.json
  derive stability report docs/results/stability --out docs/results/stability.md
exit status: 0 done, 1 some run failed (see its train.log), 2 bad input, 130 interrupted
(run the same command again to resume)."""


def _seeds(text: str) -> tuple[int, ...]:
    """'0-9', '0,1,5' or '0-4,10' as a sorted tuple of distinct seeds."""
    values: set[int] = set()
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            low, _, high = part.partition("-")
            first, last = int(low), int(high or low)
            if first < 0 or last < first or last - first >= 10_000:
                raise ValueError
            values.update(range(first, last + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seeds like 0-9 or 0,1,5 (integers >= 0, ranges of fewer than 10,000), got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one seed")
    return tuple(sorted(values))


def _arms(text: str) -> tuple[str, ...]:
    known = [a.name for a in ALL_ARMS]
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        shown = [n if len(n) <= 40 else f"{n[:40]}…" for n in unknown[:5]]
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise argparse.ArgumentTypeError(
            f"unknown arm(s) {', '.join(shown) or '(none given)'}{more}; known: {', '.join(known)}"
        )
    return names


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `derive stability` and its subcommands."""
    p = subparsers.add_parser(
        "stability",
        help="the papers' depth-stability claim, measured over many seeds",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="stability_command", metavar="SUBCOMMAND", required=True)
    _add_run(sub)
    _add_probe(sub)
    _add_report(sub)


def _probe_steps() -> Callable[[str], float]:
    """The type of --probe-steps and --steps: updates a probe replays."""
    return number(int, "an integer >= 1", limit=PROBE_STEPS)


def _add_run(sub: argparse._SubParsersAction) -> None:
    """`derive stability run`: which runs, then how to compute them."""
    r = sub.add_parser(
        "run",
        help="train the study's runs (resumable) and probe their first steps",
        description="Train every arm of the study over the seeds, each run a `derive train` run "
        "folder STUDY/runs/ARM-sSEED; then probe the first steps of the probe seeds' runs. Runs "
        "already complete are skipped; stopped ones resume. Seed by seed across the arms: main arms, "
        "then the ablations, then the dense pair, then the pre-activation 164 pair, then HBNet-110 "
        "under the readings the papers leave open.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_study_options(r)
    _add_compute_options(r)
    r.set_defaults(run=run_study)


def _add_study_options(r: argparse.ArgumentParser) -> None:
    """The options of `derive stability run` that say which runs: data, folder, arms, seeds, epochs."""
    r.add_argument(
        "--data-dir", required=True, metavar="DIR", help="CIFAR-10 (official python layout)"
    )
    r.add_argument(
        "--out", required=True, metavar="STUDY", help="the study folder (created if missing)"
    )
    r.add_argument(
        "--arms",
        type=_arms,
        default=None,
        metavar="A,B",
        help="arms to run (default: all; see derive/experiments/stability/plan.py)",
    )
    r.add_argument(
        "--seeds",
        type=_seeds,
        default=_seeds("0-9"),
        metavar="S",
        help="seeds of the main and dense arms (default: 0-9)",
    )
    r.add_argument(
        "--ablation-seeds",
        type=_seeds,
        default=_seeds("0-3"),
        metavar="S",
        help="seeds of the ablation arms (default: 0-3)",
    )
    r.add_argument(
        "--probe-seeds",
        type=_seeds,
        default=_seeds("0-1"),
        metavar="S",
        help="seeds whose runs are probed (default: 0-1)",
    )
    r.add_argument(
        "--epochs",
        type=number(int, "an integer >= 1", limit=STABILITY_EPOCHS),
        default=2,
        metavar="N",
        help="epochs per run at lr 0.1 (the papers keep 0.1 for 150 of 300 epochs, so at most 150 "
        "is still the papers' run; default: 2)",
    )
    r.add_argument(
        "--dense-epochs",
        type=number(int, "an integer >= 1", limit=STABILITY_EPOCHS),
        default=1,
        metavar="N",
        help="epochs of the DenseNet-40 / AGDNet-40 runs (about 4x a ResNet-56 step; default: 1)",
    )
    r.add_argument(
        "--probe-steps",
        type=_probe_steps(),
        default=20,
        metavar="K",
        help="updates the probe replays (it records K + 1 forward passes; fewer than the first "
        "epoch's steps; default: 20)",
    )


def _add_compute_options(r: argparse.ArgumentParser) -> None:
    """The options of `derive stability run` that say how to compute (the results stay the same)."""
    r.add_argument(
        "--workers",
        type=number(int, "an integer >= 1", limit=STUDY_WORKERS),
        default=2,
        metavar="N",
        help="runs at once, each its own process (at most 64; default: 2)",
    )
    add_threads_option(
        r,
        help="torch threads of each worker process, not of the whole study (--workers x N "
        "threads in all; default: 1)",
        default=1,
    )
    r.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="(default: auto)"
    )
    r.add_argument(
        "--memory-format",
        choices=("auto", "contiguous", "channels_last"),
        default="channels_last",
        help="of every run (channels_last: 1.2x faster steps on this CPU, "
        "bench/bench_stability_parallel.py; default: channels_last)",
    )
    r.add_argument(
        "--dry-run", action="store_true", help="list the jobs and their commands; run nothing"
    )


def _add_probe(sub: argparse._SubParsersAction) -> None:
    """`derive stability probe RUN_DIR`."""
    q = sub.add_parser(
        "probe",
        help="replay the first steps of a run with hooks: feature scale, loss, gradient norm",
        description="Rebuild a `derive train` run from its summary.json and replay its first K + 1 "
        "optimizer steps with forward hooks on every block: std of each z_k, of the logits, the "
        "loss and the gradient norm per step, written as JSON. The losses are checked against the "
        "run's steps.csv.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("run_dir", metavar="RUN_DIR", help="a derive train run folder")
    q.add_argument(
        "--steps",
        type=_probe_steps(),
        default=20,
        metavar="K",
        help="updates to replay, fewer than the first epoch's steps (default: 20)",
    )
    q.add_argument("--data-dir", default=None, metavar="DIR", help="(default: the run's own)")
    q.add_argument("--out", required=True, metavar="FILE", help="JSON file to write")
    add_threads_option(q)
    q.set_defaults(run=run_probe)


def _add_report(sub: argparse._SubParsersAction) -> None:
    """`derive stability report STUDY`."""
    t = sub.add_parser(
        "report",
        help="write the results doc and figures from a study folder",
        description="Read STUDY/runs/* and STUDY/probes/* and write the markdown doc (every number "
        "from the files; the same files give the same bytes) and, with matplotlib, the figures "
        "into STUDY.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument(
        "study", metavar="STUDY", help="a study folder written by `derive stability run`"
    )
    t.add_argument(
        "--out",
        default="docs/results/stability.md",
        metavar="FILE",
        help="markdown file to write (default: docs/results/stability.md)",
    )
    t.add_argument(
        "--no-figures", action="store_true", help="write the doc only (figures need matplotlib)"
    )
    t.set_defaults(run=run_report)


def run_study(args: argparse.Namespace) -> int:
    import sys

    # deferred: ~0.07 s of imports, kept out of `derive --help`
    from derive.experiments.stability.jobs import StudySettings, plan_jobs, run_jobs

    settings = StudySettings(
        data_dir=args.data_dir,
        study_dir=args.out,
        epochs=args.epochs,
        dense_epochs=args.dense_epochs,
        device=args.device,
        memory_format=args.memory_format,
        probe_steps=args.probe_steps,
    )
    arms = [arm(n) for n in args.arms] if args.arms else list(ALL_ARMS)
    jobs = plan_jobs(settings, arms, args.seeds, args.ablation_seeds, args.probe_seeds)
    if not jobs:
        raise UserError("no jobs: the arms given have no seeds (see --seeds, --ablation-seeds)")
    if args.dry_run:
        for job in jobs:
            state = "done" if job.done() else "to run"
            print(f"{state:7s} {shlex.join(['derive', *job.argv])}")
        return 0

    load_cifar("cifar10", args.data_dir)  # bad data: one line, exit 2, before any child starts
    ensure_output_dir(args.out)
    failed = run_jobs(jobs, workers=args.workers, threads=args.threads)
    if failed:
        print(f"derive: {len(failed)} job(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"{args.out}: all {len(jobs)} jobs done; now: derive stability report {args.out}")
    return 0


def run_probe(args: argparse.Namespace) -> int:
    from derive.experiments.stability.probe import probe_run, write_probe  # deferred: imports torch

    record = probe_run(args.run_dir, steps=args.steps, data_dir=args.data_dir)
    print(write_probe(args.out, record))
    return 0


def report_command(args: argparse.Namespace) -> str:
    parts = ["derive", "stability", "report", args.study, "--out", args.out]
    return shlex.join(parts + (["--no-figures"] if args.no_figures else []))


def run_report(args: argparse.Namespace) -> int:
    from derive.experiments.stability.report import write_study_report  # deferred: imports torch

    for path in write_study_report(
        args.study, args.out, report_command(args), figures=not args.no_figures
    ):
        print(path)
    return 0
