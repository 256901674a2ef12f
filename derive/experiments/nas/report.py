"""The NAS study doc: search runs (`derive nas search`) and, where present, their evaluation runs.

    derive nas report --study docs/results/nas-study [--eval docs/results/nas-eval] --out FILE

A search run folder holds summary.json, metrics.csv and genotype.json. Runs that share every option
but the seed form a group (a space, its initialisation, order and sizes). For each group: the
architecture-half accuracy of the supernet after the search (mean ± sample std), the share of
parameter-free operations in the searched cells, how many normal / reduction cells collapsed (every
operation parameter-free, the known DARTS failure), the search cost, and — where an evaluation folder
`EVAL/<search folder name>/` (a `derive train` run of the network generated from that genotype,
derive.experiments.nas.eval_runs) is present — the test error of the evaluations (mean ± sample std
over the space's genotypes). Evaluation folders that match no search run are reference networks (a
built-in genotype trained at the same budget, several seeds: the evaluation's own noise). The text
depends only on the run files (sorted, no dates), so a test rebuilds the committed doc byte for byte.
"""

from __future__ import annotations

import json
import math
import shlex
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

from derive.codegen.templates import render
from derive.errors import UserError
from derive.experiments.nas.eval_runs import EvalRun, collect_evals
from derive.experiments.tables import markdown_table, run_folders
from derive.limits import GENOTYPE_BYTES
from derive.nas.genotype import Gene, Genotype, genotype_of
from derive.nas.searchfiles import GENOTYPE, METRICS, read_metrics
from derive.readers import field, optional_field, read_json, read_json_object
from derive.train.runfiles import SUMMARY

SHORT = {
    "none": "zero",
    "max_pool_3x3": "max3",
    "avg_pool_3x3": "avg3",
    "skip_connect": "skip",
    "neg_skip_connect": "−skip",
    "sep_conv_3x3": "sep3",
    "sep_conv_5x5": "sep5",
    "dil_conv_3x3": "dil3",
    "dil_conv_5x5": "dil5",
}
# What the report reads of a search's summary.json, and its types.
_SUMMARY_FIELDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("options", dict),
    ("options.seed", int),
    ("space.name", str),
    ("space.ops", list),
    ("status", str),
    ("epochs", int),
    ("epochs_completed", int),
    ("search_cost.hours", (int, float)),
    ("search_cost.unit", str),
    ("dataset", dict),
    ("device.name", str),
    ("options.epochs", int),
    ("options.batch_size", int),
    ("options.arch_lr", (int, float)),
)
# Entries it reads when they are there and not null.
_OPTIONAL_FIELDS: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("search_cost.process_cpu_hours", (int, float)),
    ("options.limit_images", int),
    ("dataset.weight_half", int),
    ("dataset.architecture_half", int),
)
_NOT_GROUP = {"seed", "data_dir", "out", "device", "resume", "force", "plot", "progress_interval"}


@dataclass(frozen=True)
class SearchRun:
    """One search folder, as the report needs it."""

    name: str
    path: str
    label: str  # space and initialisation, e.g. "heavyball --hb-init"
    seed: int
    status: str
    epochs: int
    epochs_completed: int
    val_acc: float | None
    hours: float  # wall-clock
    cpu_hours: float | None  # CPU time of the search process
    unit: str
    genotype: Genotype
    settled: int  # the epoch after which the genotype never changed again
    group: str  # canonical JSON of every option but the seed
    options: dict
    dataset: dict
    n_ops: int
    device: str
    evaluation: EvalRun | None = None

    @property
    def eval_error(self) -> float | None:
        """The test error % of its completed evaluation, if any."""
        ev = self.evaluation
        return ev.test_error if ev is not None and ev.completed else None

    def free_share(self, reduction: bool) -> float:
        free = self.genotype.parameter_free(reduction)
        return sum(free) / len(free)


def _label(space: str, options: dict) -> str:
    label = space
    if options.get("hb_init"):
        label += " --hb-init"
    if options.get("algo_init"):
        label += " --algo-init"
    if options.get("order") == 2:
        label += " --order 2"
    return label


def check_search_summary(summary: dict, where: str) -> None:
    """UserError unless `summary` holds every entry the report reads, each of its type and range."""
    if "space" not in summary or "options" not in summary:
        raise UserError(f"{where} is not a `derive nas search` summary")
    for path, kind in _SUMMARY_FIELDS:
        field(summary, path, kind, where)
    for path, kind in _OPTIONAL_FIELDS:
        optional_field(summary, path, kind, where)
    options = summary["options"]
    if options["batch_size"] < 1 or options["epochs"] < 1:
        raise UserError(f"{where}: options.batch_size and options.epochs must be at least 1")
    if options.get("hb_init") and not 0 < field(summary, "options.init_weight", float, where) < 1:
        raise UserError(f"{where}: options.init_weight must lie strictly between 0 and 1")


def read_search_run(folder: Path) -> SearchRun:
    """One search folder (UserError when a file is missing or not a search's)."""
    where = str(folder / SUMMARY)
    summary = read_json_object(folder / SUMMARY)  # UserError naming the file if damaged
    genotype = genotype_of(read_json(folder / GENOTYPE, GENOTYPE_BYTES), str(folder / GENOTYPE))
    check_search_summary(summary, where)
    rows = read_metrics(folder / METRICS)
    settled = 1
    for i in range(1, len(rows)):
        if rows[i]["genotype"] != rows[i - 1]["genotype"]:
            settled = int(rows[i]["epoch"])  # type: ignore[arg-type]
    options = dict(summary["options"])
    group = json.dumps({k: v for k, v in options.items() if k not in _NOT_GROUP}, sort_keys=True)
    return SearchRun(
        name=folder.name,
        path=str(folder),
        label=_label(str(summary["space"]["name"]), options),
        seed=int(options["seed"]),
        status=str(summary["status"]),
        epochs=int(summary["epochs"]),
        epochs_completed=int(summary["epochs_completed"]),
        val_acc=rows[-1]["val_acc"] if rows else None,  # type: ignore[arg-type]
        hours=float(summary["search_cost"]["hours"]),
        cpu_hours=summary["search_cost"].get("process_cpu_hours"),
        unit=str(summary["search_cost"]["unit"]),
        genotype=genotype,
        settled=settled,
        group=group,
        options=options,
        dataset=dict(summary["dataset"]),
        n_ops=len(summary["space"]["ops"]),
        device=str(summary["device"]["name"]),
    )


def collect(
    study: str | Path, eval_root: str | Path | None = None
) -> tuple[list[SearchRun], list[EvalRun]]:
    """Every search folder directly under `study` (those holding a summary.json), sorted by name,
    each with its evaluation from `eval_root` when there is one; and the reference evaluations
    (folders of `eval_root` that match no search). UserError when an evaluation of search S did not
    train S's genotype."""
    folders = run_folders(study, "--study")
    if not folders:
        raise UserError(f"no search run folder (with {SUMMARY}) under {str(study)!r}")
    runs = [read_search_run(folder) for folder in folders]
    evals = collect_evals(eval_root) if eval_root is not None else {}
    for i, run in enumerate(runs):
        ev = evals.pop(run.name, None)
        if ev is None:
            continue
        if ev.genotype != run.genotype:
            raise UserError(
                f"evaluation {ev.name!r} trained another genotype than search {run.path!r}"
            )
        runs[i] = replace(run, evaluation=ev)
    return runs, sorted(evals.values(), key=lambda e: (e.network, e.seed, e.name))


def cell_text(gene: Gene) -> str:
    """'sep3(1)+skip(0) | …' one node after the other, the input index in parentheses."""
    return " \\| ".join("+".join(f"{SHORT.get(op, op)}({i})" for op, i in node) for node in gene)


def _mean_std(values: list[float], digits: int = 2) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (n = 1)"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f} (n = {len(values)})"


def _groups(runs: list[SearchRun]) -> list[list[SearchRun]]:
    order: dict[str, list[SearchRun]] = {}
    for run in runs:
        order.setdefault(run.group, []).append(run)
    return sorted(order.values(), key=lambda g: (_rank(g[0].label), g[0].group))


def _rank(label: str) -> tuple[int, str]:
    known = ["darts", "heavyball", "heavyball --hb-init", "agd"]
    return (known.index(label), label) if label in known else (len(known), label)


def _setup_lines(runs: list[SearchRun]) -> list[str]:
    keys = ("cells", "channels", "image_size", "limit_images", "batch_size", "epochs", "order")
    shared = {k: sorted({json.dumps(r.options.get(k)) for r in runs}) for k in keys}
    first = runs[0]
    data = first.dataset
    size = lambda k: ", ".join(shared[k])  # noqa: E731
    total = sum(r.hours for r in runs)
    total_images = int(data.get("weight_half") or 0) + int(data.get("architecture_half") or 0)
    cpu = [r.cpu_hours for r in runs if r.cpu_hours is not None]
    devices = sorted({r.device for r in runs})
    return [
        f"- **Data**: `{data.get('folder')}`, "
        + (
            f"all {total_images:,} training images"
            if shared["limit_images"] == ["null"]
            else f"the first {int(first.options['limit_images']):,} training images"
        )
        + ", "
        f"{int(data.get('weight_half') or 0):,} train the weights and "
        f"{int(data.get('architecture_half') or 0):,} the "
        f"architecture (α, β); resampled to {size('image_size')}×{size('image_size')} pixels; the "
        "test set is never read by the search.",
        f"- **Supernet**: {size('cells')} cells, {size('channels')} initial channels (the paper: 8 "
        f"cells, 16 channels at 32×32); batch {size('batch_size')} per half; {size('epochs')} epochs; order "
        f"{size('order')}. Everything else is SCIS §9.3's recipe (`derive nas search` defaults).",
        f"- **Device**: {'; '.join(devices)}; `bench/nas_study.sh` runs two searches at a time, "
        f"one thread each, on a machine shared with other jobs. Search cost of the completed epochs "
        f"of all {len(runs)} runs: {total:.2f} wall-clock hours"
        + (f", {sum(cpu):.2f} hours of process CPU time" if len(cpu) == len(runs) else "")
        + " (the wall-clock time is inflated by the other jobs; the CPU time is what the searches "
        "themselves cost).",
    ]


def summary_table(groups: list[list[SearchRun]]) -> list[str]:
    head = [
        "space (init)",
        "runs done",
        "arch-half accuracy % after search",
        "param-free ops, normal / reduce",
        "collapsed normal",
        "collapsed reduce",
        "distinct normal cells",
        "hours per search, wall / CPU",
        "evaluation test error %",
    ]
    rows = []
    for group in groups:
        done = [r for r in group if r.status == "completed"]
        if not done:
            rows.append([f"`{group[0].label}`", f"0 / {len(group)}", *["—"] * 6, "not evaluated"])
            continue
        acc = [100 * r.val_acc for r in done if r.val_acc is not None]
        free_n = statistics.mean(r.free_share(False) for r in done)
        free_r = statistics.mean(r.free_share(True) for r in done)
        ev = [r.eval_error for r in done if r.eval_error is not None]
        rows.append(
            [
                f"`{group[0].label}`",
                f"{len(done)} / {len(group)}",
                _mean_std(acc),
                f"{100 * free_n:.0f} % / {100 * free_r:.0f} %",
                f"{sum(r.genotype.collapsed(False) for r in done)} / {len(done)}",
                f"{sum(r.genotype.collapsed(True) for r in done)} / {len(done)}",
                f"{len({r.genotype.normal for r in done})} of {len(done)}",
                _hours(done),
                _mean_std(ev) if ev else "not evaluated",
            ]
        )
    return markdown_table(head, rows)


def ops_table(groups: list[list[SearchRun]]) -> list[str]:
    """How often each operation was chosen in the derived cells of each group (all seeds)."""
    head = ["space (init)", "cell", *SHORT.values()]
    rows = []
    for group in groups:
        if not any(r.status == "completed" for r in group):
            continue
        for cell, reduction in (("normal", False), ("reduce", True)):
            counts = dict.fromkeys(SHORT, 0)
            for run in (r for r in group if r.status == "completed"):
                gene, _ = run.genotype.cell(reduction)
                for node in gene:
                    for op, _ in node:
                        counts[op] = counts.get(op, 0) + 1
            rows.append([f"`{group[0].label}`", cell, *(str(counts[op]) for op in SHORT)])
    return markdown_table(head, rows)


def _hours(group: list[SearchRun]) -> str:
    wall = statistics.mean(r.hours for r in group)
    cpu = [r.cpu_hours for r in group if r.cpu_hours is not None]
    return f"{wall:.3f} / " + (f"{statistics.mean(cpu):.3f}" if len(cpu) == len(group) else "—")


def runs_table(runs: list[SearchRun]) -> list[str]:
    head = [
        "run",
        "seed",
        "epochs",
        "status",
        "arch-half acc %",
        "settled",
        "normal cell",
        "reduce cell",
        "eval error %",
    ]
    rows = []
    for r in sorted(runs, key=lambda r: (_rank(r.label), r.group, r.seed, r.name)):
        collapse = [
            c for c, red in (("normal", False), ("reduce", True)) if r.genotype.collapsed(red)
        ]
        rows.append(
            [
                f"`{r.name}`" + (f" (collapsed: {', '.join(collapse)})" if collapse else ""),
                str(r.seed),
                f"{r.epochs_completed}/{r.epochs}",
                r.status,
                f"{100 * r.val_acc:.2f}" if r.val_acc is not None else "—",
                str(r.settled),
                cell_text(r.genotype.normal),
                cell_text(r.genotype.reduce),
                _eval_cell(r.evaluation),
            ]
        )
    return markdown_table(head, rows)


def _eval_cell(ev: EvalRun | None) -> str:
    if ev is None:
        return "—"
    if not ev.completed:
        return f"unfinished ({ev.epochs_completed}/{ev.epochs} ep.)"
    return f"{ev.test_error:.2f}"


def _movement_text(runs: list[SearchRun]) -> str:
    """How far Adam can move a logit in these runs, and what that means for HB initialisation."""
    o = runs[0].options
    half = int(runs[0].dataset.get("weight_half") or 0)
    steps = int(o["epochs"]) * -(-half // int(o["batch_size"]))
    move = steps * float(o["arch_lr"])
    text = (
        f"In {steps} architecture steps at Adam lr {float(o['arch_lr']):g} a logit moves by at most "
        f"about {move:.3g} (Adam's step is about its lr), so the derived cells reflect early, small "
        "differences between operations"
    )
    hb = [r for r in runs if r.options.get("hb_init")]
    if hb:
        w = float(hb[0].options["init_weight"])
        margin = math.log(w * (hb[0].n_ops - 1) / (1 - w))
        text += (
            f"; with `--hb-init` the ±identity edges start {margin:.1f} logits ahead of every other "
            f"operation (weight {w:g}), "
            + (
                f"more than twice {move:.3g}, so their choice is the initialisation itself, not a "
                "search result"
                if margin > 2 * move
                else "which the search could have undone"
            )
        )
    return text + "."


def _completed_evals(groups: list[list[SearchRun]], references: list[EvalRun]) -> list[EvalRun]:
    searched = [r.evaluation for g in groups for r in g if r.eval_error is not None]
    return [e for e in searched if e is not None] + [e for e in references if e.completed]


def _values(evals: list[EvalRun], key: str) -> str:
    """The values an option took over `evals`, e.g. '4' or '4, 6'."""
    seen = sorted({json.dumps(dict(e.budget).get(key)) for e in evals})
    return ", ".join(v.strip('"') for v in seen)


def eval_setup_lines(evals: list[EvalRun], epochs_searched: str) -> list[str]:
    """The evaluation's network size, recipe, data and cost (from the evaluation folders)."""
    sizes = sorted({(e.channels, e.cells) for e in evals})
    size = "; ".join(f"{c} channels, {n} cells" for c, n in sizes)
    seeds = ", ".join(str(s) for s in sorted({e.seed for e in evals}))
    params = [e.parameters for e in evals]
    first = evals[0]
    cpu = [e.cpu_seconds for e in evals if e.cpu_seconds is not None]
    wall = sum(e.wall_seconds for e in evals) / 3600
    v = lambda key: _values(evals, key)  # noqa: E731
    return [
        f"- **Evaluation**: the genotype of every completed search (search epochs: {epochs_searched}) "
        f"→ `derive nas network RUN/genotype.json` at {size} (DARTS evaluates at 36 channels and 20 "
        f"cells) → `derive train NET.py --recipe {v('recipe_name')}` with the epochs shortened to "
        f"**{v('epochs')}** (DARTS: 600) and the rest of DARTS's evaluation recipe: batch "
        f"{v('batch_size')}, SGD lr {v('lr')} ({v('lr_schedule')} to 0), momentum {v('momentum')}, "
        f"weight decay {v('weight_decay')}, cutout {v('cutout')}, auxiliary weight "
        f"{v('auxiliary_weight')}, drop-path {v('drop_path')}, gradient clipping {v('grad_clip')}; "
        f"training seed {seeds}. Data: `{first.data_folder}`, all {first.train_images:,} training "
        f"images at 32×32 (the search saw only its subset, resampled), the test error after the last "
        f"epoch on the {first.test_images:,} test images, which the search never read. "
        f"{len(evals)} networks of "
        + (f"{min(params):,}" if min(params) == max(params) else f"{min(params):,}–{max(params):,}")
        + " parameters without the auxiliary head (DARTS's count).",
        f"- **Evaluation cost**: {wall:.2f} wall-clock hours for the {len(evals)} runs"
        + (
            f", {sum(cpu) / 3600:.2f} hours of process CPU time "
            f"({sum(cpu) / 60 / len(cpu):.1f} CPU-minutes per run, /usr/bin/time)"
            if len(cpu) == len(evals)
            else ""
        )
        + "; `bench/nas_eval_study.sh`, on the same shared machine. No GPU measured.",
    ]


def _eval_row(label: str, evals: list[EvalRun], count: str) -> list[str]:
    errors = [e.test_error for e in evals]
    cpu = [e.cpu_seconds for e in evals if e.cpu_seconds is not None]
    return [
        label,
        count,
        _mean_std(errors),
        f"{min(errors):.2f} – {max(errors):.2f}",
        f"{statistics.mean(e.parameters for e in evals) / 1000:.0f}",
        f"{statistics.mean(cpu) / 60:.1f}" if len(cpu) == len(evals) else "—",
    ]


def eval_table(groups: list[list[SearchRun]], references: list[EvalRun]) -> list[str]:
    """Test error per space (over its evaluated genotypes) and per reference network (over seeds)."""
    head = [
        "networks",
        "evaluated",
        "test error %",
        "min – max",
        "parameters (k)",
        "CPU-minutes per run",
    ]
    rows = []
    for group in groups:
        done = [r for r in group if r.status == "completed"]
        evals = [
            r.evaluation for r in done if r.evaluation is not None and r.eval_error is not None
        ]
        if evals:
            rows.append(
                _eval_row(
                    f"`{group[0].label}` (searched)",
                    evals,
                    f"{len(evals)} of {len(done)} genotypes",
                )
            )
    by_network: dict[str, list[EvalRun]] = {}
    for ev in references:
        if ev.completed:
            by_network.setdefault(ev.network, []).append(ev)
    for network, evals in sorted(by_network.items()):
        seeds = ", ".join(str(e.seed) for e in evals)
        rows.append(_eval_row(f"`{network}` (reference)", evals, f"{len(evals)} seeds ({seeds})"))
    return markdown_table(head, rows)


def _hb_pattern(groups: list[list[SearchRun]]) -> str:
    """How many derived heavy-ball nodes keep SCIS (18)'s skip(x_{t−1}) and −skip(x_{t−2}), per init."""
    counts = []
    for group in groups:
        done = [r for r in group if r.status == "completed"]
        if not done or done[0].genotype.space != "heavyball":
            continue
        kept = total = 0
        for run in done:
            for reduction in (False, True):
                gene, _ = run.genotype.cell(reduction)
                for t, node in enumerate(gene):
                    total += 1
                    kept += ("skip_connect", t + 1) in node and ("neg_skip_connect", t) in node
        counts.append((group[0].label, kept, total, bool(done[0].options.get("hb_init"))))
    if not counts:
        return ""
    text = (
        "- Nodes of the derived heavy-ball cells (normal and reduction, all completed seeds) that "
        "keep SCIS (18)'s + x_{t−1} − x_{t−2}, i.e. skip from x_{t−1} and −skip from x_{t−2}: "
        + "; ".join(f"{kept} of {total} with `{label}`" for label, kept, total, _ in counts)
        + "."
    )
    if any(hb and kept == total for _, kept, total, hb in counts):
        text += (
            " With `--hb-init` every node keeps them: over so few steps the initialisation's "
            "margin keeps the cell at (18), and only ō₁, the edge that starts random, is searched."
        )
    return text


def _space_means(groups: list[list[SearchRun]]) -> list[tuple[float, str, int]]:
    """(mean evaluation test error, space label, evaluated genotypes) of each evaluated space."""
    means = []
    for group in groups:
        errors = [r.eval_error for r in group if r.eval_error is not None]
        if errors:
            means.append((statistics.mean(errors), group[0].label, len(errors)))
    return means


def _seed_noise(references: list[EvalRun]) -> dict[str, object] | None:
    """The first reference network trained with several seeds: its test errors' std and range."""
    by_network: dict[str, list[float]] = {}
    for ev in references:
        if ev.completed:
            by_network.setdefault(ev.network, []).append(ev.test_error)
    for network, errors in sorted(by_network.items()):
        if len(errors) >= 2:
            return {
                "network": network,
                "seeds": len(errors),
                "std": statistics.stdev(errors),
                "low": min(errors),
                "high": max(errors),
            }
    return None


def _reference_context(
    references: list[EvalRun], means: list[tuple[float, str, int]], noise: float | None
) -> dict[str, object] | None:
    """Each space's mean against the published cell's, sorted by twice the seed-to-seed std."""
    ref = [e for e in references if e.completed]
    if not ref or not means:
        return None
    ref_mean = statistics.mean(e.test_error for e in ref)
    margin = 2 * noise if noise is not None else math.inf
    lower = [label for mean, label, _ in means if ref_mean - mean > margin]
    higher = [label for mean, label, _ in means if mean - ref_mean > margin]
    return {
        "network": ref[0].network,
        "mean": ref_mean,
        "differences": [(label, mean - ref_mean) for mean, label, _ in means],
        "lower": lower,
        "higher": higher,
        "close": [label for _, label, _ in means if label not in lower + higher],
    }


def eval_findings(groups: list[list[SearchRun]], references: list[EvalRun]) -> list[str]:
    """Plain sentences on what the evaluations do and do not show, from their numbers
    (templates/nas_findings.md.j2)."""
    evals = _completed_evals(groups, references)
    if not evals:
        return []
    means = _space_means(groups)
    seed_noise = _seed_noise(references)
    noise = seed_noise["std"] if seed_noise else None
    text = render(
        "nas_findings.md.j2",
        epochs=_values(evals, "epochs"),
        test_images=evals[0].test_images,
        train_images=f"{evals[0].train_images:,}",
        seed_noise=seed_noise,
        noise=noise,
        spread={"lowest": min(means), "highest": max(means)} if len(means) >= 2 else None,
        reference=_reference_context(references, means, noise),
    )
    return text.removesuffix("\n").split("\n")


def build_nas_report(study: str | Path, eval_root: str | Path | None, command: str) -> str:
    """The text of the study's doc: numbers from the run files, prose from templates/nas.md.j2."""
    runs, references = collect(study, eval_root)
    groups = _groups(runs)
    evals = _completed_evals(groups, references)
    epochs_searched = ", ".join(sorted({str(r.options.get("epochs")) for r in runs}))
    setup = _setup_lines(runs) + (eval_setup_lines(evals, epochs_searched) if evals else [])
    text = render(
        "nas.md.j2",
        command=command,
        setup="\n".join(setup),
        summary_table="\n".join(summary_table(groups)),
        ops_table="\n".join(ops_table(groups)),
        evals=bool(evals),
        eval_seeds=sorted({str(r.evaluation.seed) for g in groups for r in g if r.evaluation}),
        eval_table="\n".join(eval_table(groups, references)) if evals else "",
        runs_table="\n".join(runs_table(runs)),
        movement=_movement_text(runs),
        pattern=_hb_pattern(groups),
        findings="\n".join(eval_findings(groups, references)) if evals else "",
    )
    return text.rstrip() + "\n"


def command_for(study: str, eval_root: str | None, out: str) -> str:
    parts = ["derive", "nas", "report", "--study", study]
    if eval_root:
        parts += ["--eval", eval_root]
    return shlex.join(parts + ["--out", out])


__all__ = [
    "SearchRun",
    "eval_findings",
    "eval_setup_lines",
    "eval_table",
    "build_nas_report",
    "cell_text",
    "collect",
    "command_for",
    "read_search_run",
]
