"""The CIFAR results doc: our runs' test errors beside the papers' printed SCIS Table 1 / ACML Table 4.

Only runs on the full CIFAR data (50,000 train / 10,000 test) sit beside the printed numbers;
cifar-10-head (the 10 % subset) and other subsets get tables of their own, with no paper column.
Our columns hold only numbers from the run folders; printed columns only the papers' numbers.
The text depends on the inputs alone (sorted, no clock), so the same runs give the same file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from derive.codegen.templates import render
from derive.experiments.cifar.runs import (
    DATASET_LABELS,
    Group,
    Run,
    collect_runs,
    group_runs,
    recipe_differences,
    train_command,
)
from derive.experiments.paper_tables import (
    ACML_CIFAR,
    CIFAR_COLUMNS,
    CIFAR_PRINTED,
    SCIS_CIFAR,
    printed_cifar,
)
from derive.experiments.simulation.files import read_simulation
from derive.experiments.simulation.table import ordering_table, results_table, settings_lines
from derive.experiments.stats import (
    MAX_EXACT_PAIRS,
    mean_std,
    sign_flip_p_value,
    sign_test_p_value,
)
from derive.experiments.tables import markdown_table


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _params(count: int | None) -> str:
    """'0.86M' as the papers print it; small models exactly ('370')."""
    if count is None:
        return "?"
    return f"{count / 1e6:.2f}M" if count >= 10_000 else f"{count:,}"


def _as_printed(value: float | None) -> str:
    """A printed number in the paper's own digits (26 stays 26, 5.2 stays 5.2)."""
    return "—" if value is None else f"{value:g}"


def ours_cell(group: Group) -> str:
    """'5.31 ± 0.12 (n = 3)', '5.31 (n = 1)', or '— (no completed run)'."""
    mean, std = group.mean_std()
    n = len(group.counted)
    if mean is None:
        return "— (no completed run)"
    return f"{mean:.2f} ± {std:.2f} (n = {n})" if std is not None else f"{mean:.2f} (n = 1)"


def not_counted_cell(group: Group) -> str:
    """How many runs the mean leaves out, and why: diverged, unfinished."""
    parts = []
    if group.diverged:
        parts.append(f"{group.diverged} diverged")
    if group.unfinished:
        parts.append(f"{group.unfinished} unfinished")
    return ", ".join(parts) or "0"


def _epochs(group: Group) -> str:
    return str(group.first.epochs)


def _seeds(group: Group) -> str:
    return ", ".join(map(str, group.seeds()))


def _recipe(group: Group) -> str:
    diffs = recipe_differences(group.first)
    return ", ".join(diffs) if diffs else "paper recipe"


def _model_params(group: Group) -> str:
    return ", ".join(sorted({_params(r.parameters) for r in group.runs}))


def _printed(model: str, dataset: str, augment: bool, source: str) -> str:
    """The printed error, with '*' when the paper notes something about the row (see its table)."""
    row = printed_cifar(model, source)
    if row is None or row.error(dataset, augment) is None:
        return "—"
    return _as_printed(row.error(dataset, augment)) + ("*" if row.note else "")


def full_table(groups: Sequence[Group]) -> list[str]:
    head = [
        "Model",
        "Data",
        "Params: ours",
        f"Params: printed {SCIS_CIFAR}",
        "Test error %: ours, mean ± std",
        "not in mean",
        f"printed {SCIS_CIFAR}",
        f"printed {ACML_CIFAR}",
        "Epochs",
        "Recipe",
        "Seeds",
        "Device",
    ]
    rows = []
    for g in groups:
        r = g.first
        scis = printed_cifar(r.model, SCIS_CIFAR)
        rows.append(
            [
                r.model,
                r.data_label,
                _model_params(g),
                (scis.params or "—") if scis else "—",
                ours_cell(g),
                not_counted_cell(g),
                _printed(r.model, r.dataset, r.augment, SCIS_CIFAR),
                _printed(r.model, r.dataset, r.augment, ACML_CIFAR),
                _epochs(g),
                _recipe(g),
                _seeds(g),
                "; ".join(g.devices()),
            ]
        )
    return markdown_table(head, rows)


def subset_table(groups: Sequence[Group]) -> list[str]:
    head = [
        "Model",
        "Data",
        "Augmentation",
        "Params",
        "Test error %: ours, mean ± std",
        "not in mean",
        "Epochs",
        "Recipe",
        "Seeds",
        "Device",
    ]
    rows = [
        [
            model_label(g.first),
            g.first.data_label,
            "on" if g.first.augment else "off",
            _model_params(g),
            ours_cell(g),
            not_counted_cell(g),
            _epochs(g),
            _recipe(g),
            _seeds(g),
            "; ".join(g.devices()),
        ]
        for g in groups
    ]
    return markdown_table(head, rows)


# The papers' comparisons: each optimization-inspired network beside the baseline of its depth.
PAIRS = {
    "hbnet20": "resnet20",
    "hbnet32": "resnet32",
    "hbnet56": "resnet56",
    "hbnet110": "resnet110",
    "agdnet40": "densenet40",
    "agdnet52": "densenet52",
}


def _signed(value: float) -> str:
    """'+1.74' or '−3.25' (a real minus sign, as in the tables' prose)."""
    return f"{'−' if value < 0 else '+'}{abs(value):.2f}"


# The papers' ResNet and HBNet as `create_model` arguments of a generated heavy-ball conv file
# (its docstring lists them): the same networks as the zoo's resnetD / hbnetD at any depth D.
HEAVYBALL_FILE = "heavyball_conv.py"
FILE_NETWORKS = {
    "resnet": {"coefficients": {"beta1": 1.0, "beta2": 0.0}, "modes": {"beta2": "pruned"}},
    "hbnet": {"coefficients": {"beta1": 1.0, "beta2": -1.0}},
}


def network_name(run: Run) -> str:
    """The zoo-style name of the run's network: the zoo name itself, or 'resnet32' / 'hbnet32' for a
    generated heavy-ball conv file given the papers' ResNet / HBNet coefficients and a depth; else
    the model as given."""
    args = run.options.get("model_args") or {}
    if Path(run.model).name != HEAVYBALL_FILE or not isinstance(args, dict):
        return run.model
    depth = args.get("depth")
    rest = {k: v for k, v in args.items() if k != "depth"}
    for family, settings in FILE_NETWORKS.items():
        if type(depth) is int and _same_numbers(rest, settings):
            return f"{family}{depth}"
    return run.model


def model_label(run: Run) -> str:
    """The model as given, with its network's name first when a model file's arguments name one
    ('resnet32 (heavyball_conv.py)')."""
    name = network_name(run)
    return run.model if name == run.model else f"{name} ({Path(run.model).name})"


def _same_numbers(a: object, b: object) -> bool:
    """Equal mappings, numbers compared by value (1 == 1.0), bools never equal to numbers."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_numbers(a[k], b[k]) for k in a)
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return not isinstance(a, bool) and not isinstance(b, bool) and float(a) == float(b)
    return a == b


def _pair_key(run: Run, name: str) -> tuple[object, ...]:
    """What two runs must share to be paired: the data, augmentation and recipe (a model file's
    network arguments aside, which name the network), and the model file itself when there is one."""
    recipe = tuple(kv for kv in run.recipe if kv[0] != "model_args")
    source = run.model if run.model.endswith(".py") else ""
    return (name, source, run.dataset, run.variant, run.train_size, run.augment, recipe)


def _p(value: float) -> str:
    """A p-value with three significant digits ('0.00195', '0.754', '1')."""
    return f"{value:.3g}"


def paired_rows(groups: Sequence[Group], tests: bool = False) -> list[list[str]]:
    """For each PAIRS model and its baseline in the same data, augmentation, epochs and recipe:
    the difference of their final test errors seed by seed (only seeds both completed), and the
    mean ± sample std of those differences. Pairing removes the seed's share of the spread.
    `tests` adds how many seeds the first model erred less in and the exact two-sided p-values of
    the sign-flip permutation test and of the sign test on those differences."""
    by_key = {_pair_key(g.first, network_name(g.first)): g for g in groups}
    rows = []
    for g in groups:
        r = g.first
        name = network_name(r)
        base_name = PAIRS.get(name)
        base = by_key.get(_pair_key(r, base_name)) if base_name else None
        if base is None:
            continue
        ours = {run.seed: run.final_error for run in g.counted}
        theirs = {run.seed: run.final_error for run in base.counted}
        seeds = sorted(set(ours) & set(theirs))
        if not seeds:
            continue
        diffs = [ours[s] - theirs[s] for s in seeds]  # type: ignore[operator]
        mean, std = mean_std(diffs)
        spread = "" if std is None else f" ± {std:.2f}"
        row = [
            f"{name} − {base_name}",
            r.data_label,
            "on" if r.augment else "off",
            _epochs(g),
            _recipe(g),
            ", ".join(map(str, seeds)),
            " / ".join(_signed(d) for d in diffs),
            f"{_signed(mean)}{spread} (n = {len(diffs)})",
        ]
        if tests:
            flip = _p(sign_flip_p_value(diffs)) if len(diffs) <= MAX_EXACT_PAIRS else "—"
            row += [
                f"{sum(d < 0 for d in diffs)} of {len(diffs)}",
                flip,
                _p(sign_test_p_value(diffs)),
            ]
        rows.append(row)
    return rows


def paired_table(groups: Sequence[Group], tests: bool = False) -> list[str]:
    """The paired differences as a markdown table (no lines when no pair shares a seed); `tests`
    adds the exact tests' columns (paired_rows). Its introduction is in templates/cifar.md.j2."""
    rows = paired_rows(groups, tests)
    if not rows:
        return []
    head = [
        "Pair",
        "Data",
        "Augmentation",
        "Epochs",
        "Recipe",
        "Seeds (shared)",
        "Test error difference per seed, points",
        "mean ± std",
    ]
    if tests:
        head += [
            "first model erred less in",
            "p, sign-flip permutation test (exact, two-sided)",
            "p, sign test (exact, two-sided)",
        ]
    return markdown_table(head, rows)


def runs_table(runs: Sequence[Run]) -> list[str]:
    head = [
        "Run folder",
        "Model",
        "Data",
        "Aug",
        "Status",
        "Epochs done",
        "Seed",
        "Final test error %",
        "Best test error % (epoch)",
        "Train time",
        "Device",
        "torch",
    ]
    rows = []
    for r in runs:
        best = f"{_pct(r.best_error)} ({r.best_epoch})" if r.best_epoch is not None else "—"
        rows.append(
            [
                f"`{r.path}`",
                r.model,
                r.data_label,
                "+" if r.augment else "-",
                r.status,
                f"{r.epochs_completed}/{r.epochs}",
                str(r.seed),
                _pct(r.final_error),
                best,
                _duration(r.wall_seconds),
                r.device,
                r.torch,
            ]
        )
    return markdown_table(head, rows)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def printed_tables() -> list[str]:
    """The papers' CIFAR tables in full, as printed (for reference; not our results)."""
    columns = [f"{DATASET_LABELS[d]}{'(+)' if a else ''}" for d, a in CIFAR_COLUMNS]
    out: list[str] = []
    for source in (SCIS_CIFAR, ACML_CIFAR):
        rows = [r for r in CIFAR_PRINTED if r.source == source]
        with_params = any(r.params for r in rows)
        head = ["Model as printed", "zoo name"] + (["Params"] if with_params else []) + columns
        out += [f"### {source} (printed)", ""]
        cells = [
            [r.printed_name, r.zoo or "—"]
            + ([r.params or "—"] if with_params else [])
            + [_as_printed(v) for v in r.errors]
            for r in rows
        ]
        out += markdown_table(head, cells)
        notes = sorted({r.note for r in rows if r.note})
        out += [""] + [f"{n}." for n in notes] + ([""] if notes else [])
    return out


def build_report(
    run_dirs: Sequence[str | Path] = (),
    runs_roots: Sequence[str | Path] = (),
    simulation: str | Path | None = None,
    command: str | None = None,
    paired_tests: bool = False,
) -> str:
    """The markdown results doc of the given run folders (and simulation folder); UserError on bad input.
    `paired_tests` adds the exact paired tests to each paired table (paired_rows). The sentences
    are templates/cifar.md.j2; the numbers and tables come from here."""
    runs = collect_runs(list(run_dirs), list(runs_roots))
    sim = simulation_section(simulation) if simulation is not None else None
    groups = group_runs(runs)
    text = render(
        "cifar.md.j2",
        run_count=len(runs),
        group_count=len(groups),
        diverged=sum(r.status == "diverged" for r in runs),
        scis=SCIS_CIFAR,
        acml=ACML_CIFAR,
        command=command,
        sections=group_sections(groups, paired_tests),
        paired_tests=paired_tests,
        runs_table="\n".join(runs_table(runs)),
        commands=[train_command(r) for r in runs],
        sim=sim,
        printed="\n".join(printed_tables()),
    )
    return text.rstrip() + "\n"


def group_sections(groups: Sequence[Group], paired_tests: bool) -> list[dict[str, str]]:
    """The doc's sections of groups: the full data (always, perhaps empty), cifar-10-head and other
    subsets (when there are any), each with its table and its paired table ('' when none)."""
    sections = []
    for kind in ("full", "head", "subset"):
        chosen = [g for g in groups if g.first.variant == kind]
        if not chosen and kind != "full":
            continue
        table = (full_table if kind == "full" else subset_table)(chosen) if chosen else []
        paired = paired_table(chosen, paired_tests) if chosen else []
        sections.append({"kind": kind, "table": "\n".join(table), "paired": "\n".join(paired)})
    return sections


def simulation_section(folder: str | Path) -> dict[str, object]:
    """What the doc's simulation section shows of a simulation output folder; UserError if bad."""
    sim, _ = read_simulation(folder)
    return {
        "folder": str(folder),
        "status": sim.get("status", "?"),
        "command": str(sim["command"]) if sim.get("command") else "",
        "settings": "\n".join(settings_lines(sim)),
        "results": results_table(sim),
        "ordering": ordering_table(sim),
    }
