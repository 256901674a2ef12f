"""Markdown for a simulation: our final train MSE beside the papers' printed Table 2 / B1, and the settings.

Works from the simulation.json content (a fresh run or one read back from disk), so `derive simulate`
and `derive report --simulation` print the same table. Our columns hold only our numbers; the papers'
numbers appear only in columns headed "printed".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from derive.experiments.paper_tables import (
    ACML_SIM,
    SCIS_SIM,
    SIM_COLUMNS,
    SIM_EQUATIONS,
    SIM_PRINTED,
)
from derive.experiments.simulation.config import NETWORKS, QUICK
from derive.experiments.tables import markdown_table

PRINTED_LABEL = "printed"


def _fmt(value: object) -> str:
    return f"{value:.5f}" if isinstance(value, (int, float)) else "—"


def _ours(runs: Sequence[Mapping[str, object]], algorithm: str, depth: int) -> str:
    for run in runs:
        if run["algorithm"] == algorithm and run["depth"] == depth:
            if run["status"] != "completed":
                return f"{run['status']} (after {run.get('epochs_completed', '?')} epochs)"
            return _fmt(run.get("final_train_mse"))
    return "not run"


def results_table(data: Mapping[str, object]) -> str:
    """| depth | ADMM ours | ADMM printed | GD ours | ... | in the printed table's column order."""
    config = data["config"]
    runs = data["runs"]
    algorithms = [a for a in SIM_COLUMNS if a in config["algorithms"]]
    depths = sorted(set(config["depths"]) | set(SIM_PRINTED))
    head = ["depth"]
    for a in algorithms:
        eq = f"{NETWORKS[a].scis}/{SIM_EQUATIONS[ACML_SIM][a]}"
        head += [f"{NETWORKS[a].label} {eq}: ours", f"{NETWORKS[a].label}: {PRINTED_LABEL}"]
    rows = []
    for depth in depths:
        row = [str(depth)]
        for a in algorithms:
            ours = _ours(runs, a, depth) if depth in config["depths"] else "not run"
            printed = SIM_PRINTED.get(depth, {}).get(a)
            row += [ours, _fmt(printed)]
        rows.append(row)
    return "\n".join(markdown_table(head, rows))


def _ranking(values: Mapping[str, float], digits: int = 5) -> str:
    """'HB = AGD2 < AGD < GD': best first, on values rounded as the table prints them (ties: '=')."""
    order = sorted(values, key=lambda a: (round(values[a], digits), SIM_COLUMNS.index(a)))
    text = ""
    for i, a in enumerate(order):
        if i:
            tie = round(values[a], digits) == round(values[order[i - 1]], digits)
            text += " = " if tie else " < "
        text += NETWORKS[a].label
    return text


def ordering_table(data: Mapping[str, object]) -> str:
    """Per depth, the networks from lowest to highest final MSE: ours beside the printed order.

    Both rank the numbers as the table prints them (5 decimals), so networks that tie there are
    joined by '='. Our runs that did not complete are named after the ranking, not ranked.
    """
    config = data["config"]
    algorithms = [a for a in SIM_COLUMNS if a in config["algorithms"]]
    head = ["depth", "ours, best → worst", f"{PRINTED_LABEL}, best → worst (same networks)"]
    rows = []
    for depth in sorted(config["depths"]):
        runs = [r for r in data["runs"] if r["depth"] == depth and r["algorithm"] in algorithms]
        ours = {r["algorithm"]: r["final_train_mse"] for r in runs if r["status"] == "completed"}
        ranked = _ranking(ours)
        missing = [NETWORKS[r["algorithm"]].label for r in runs if r["status"] != "completed"]
        if missing:
            ranked += f" (not ranked, {', '.join(missing)}: did not complete)"
        printed = SIM_PRINTED.get(depth)
        if printed:
            paper = _ranking({a: printed[a] for a in algorithms if a in printed})
        else:
            paper = "(no printed row)"
        rows.append([str(depth), ranked or "—", paper])
    return "\n".join(markdown_table(head, rows))


def settings_lines(data: Mapping[str, object]) -> list[str]:
    """Bullet lines stating every choice of the run (what the papers say and what we chose)."""
    c = data["config"]
    batch = c["effective_batch_size"]
    batch_text = (
        f"{batch} (the whole training set: one gradient step per epoch)"
        if batch >= c["samples"]
        else f"{batch} (shuffled each epoch)"
    )
    optimizer = f"{c['optimizer']}, lr {c['lr']:g}" + (
        f", momentum {c['momentum']:g}" if c["optimizer"] == "sgd" else " (betas 0.9, 0.999)"
    )
    software = data.get("software") if isinstance(data.get("software"), dict) else {}
    init = {
        "default": "PyTorch's nn.Linear default, U(±1/√dim)",
        "xavier": "Xavier-uniform",
        "orthogonal": "orthogonal",
    }[c["init"]]
    lines = [
        f"- networks: {', '.join(NETWORKS[a].label for a in c['algorithms'])} "
        "(untied fc form of generated/<algo>_fc.py"
        + (", HB with β = 0.3), " if "heavyball" in c["algorithms"] else "), ")
        + f"Φ = {c['activation']}, a {c['dim']}×{c['dim']} weight per layer, bias {'on' if c['bias'] else 'off'}",
        f"- data: {c['samples']:,} pairs (z₀, f), dimension {c['dim']}, z₀ and f independent draws "
        f"from N(0, I), seed {c['seed']}",
        f"- depths {', '.join(map(str, sorted(c['depths'])))}; {c['epochs']:,} epochs; batch {batch_text}",
        f"- optimizer (not stated by the papers; our choice): {optimizer}; initialization: {init}",
        "- loss and reported value: MSE = mean over samples and coordinates of (Net(z₀) − f)², the whole "
        "training set evaluated exactly after the last epoch",
        f"- compute: {data.get('device', '?')}, torch {software.get('torch', '?')}"
        + (", torch.compile" if c.get("compile") else ", eager")
        + f"; wall time {_duration(data.get('wall_time_seconds'))}",
    ]
    devices = sorted({str(r["device"]) for r in data["runs"] if r.get("device")})
    if len(devices) > 1:  # a resumed run may have moved
        lines.append(
            f"- the runs ran on several devices: {'; '.join(devices)} (see simulation.json)"
        )
    if c.get("quick"):
        reduced = ", ".join(f"{k} {_plain(c[k])}" for k in QUICK)
        lines.append(
            f"- **--quick**: a reduced run ({reduced}); the papers' setting is "
            "10,000 samples, 1,000 epochs, depths 10/20/30/40"
        )
    return lines


def _plain(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return "/".join(map(str, value))
    return f"{value:,}" if isinstance(value, int) else str(value)


def _duration(seconds: object) -> str:
    if not isinstance(seconds, (int, float)):
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def simulation_markdown(data: Mapping[str, object], plot_name: str | None = None) -> str:
    """The whole simulation.md: title, settings, the table beside the printed one, references, ordering."""
    d = data["data"]
    status = data.get("status", "?")
    parts = [
        "# Simulation: optimization-inspired fc networks fitting random targets",
        "",
        "SCIS'23 appendix B.3 (Table B1) = ACML'18 §5.3 (Table 2). "
        f"Columns marked “{PRINTED_LABEL}” are the papers' numbers as printed ({SCIS_SIM}, identical "
        f"to {ACML_SIM}); every other number is ours. Equation numbers: SCIS/ACML.",
        "",
    ]
    if status != "completed":
        parts += [f"**Status: {status}** — the table holds the runs finished so far.", ""]
    if data.get("command"):
        parts += ["```", str(data["command"]), "```", ""]
    parts += settings_lines(data) + [""]
    parts += ["## Final train MSE", "", results_table(data), ""]
    parts += [
        "Reference values of this draw of the data (ours): predicting 0 for every sample gives "
        f"MSE = mean(f²) = {d['mean_f_squared']:.5f}; the best constant prediction (each "
        f"coordinate's sample mean) gives {d['best_constant_mse']:.5f}. Since f is independent of z₀, "
        "no network can predict it: a final MSE below the best constant means the network memorized "
        "some of the random training targets, one above it means it did not even reach the best "
        "constant output.",
        "",
        "## Ordering per depth",
        "",
        ordering_table(data),
        "",
    ]
    if plot_name:
        parts += [f"![train MSE against epoch, one panel per depth]({plot_name})", ""]
    return "\n".join(parts)
