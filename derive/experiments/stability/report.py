"""docs/results/stability.md: the stability study's doc, built from its run and probe files alone.

Every number comes from STUDY/runs/*/{metrics,steps}.csv, summary.json and STUDY/probes/*.json;
the prose that depends on the numbers is chosen by the rules written here (thresholds on the exact
p-values), so the same files always give the same bytes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

from derive.codegen.templates import render
from derive.experiments.stability.charts import draw_figures
from derive.experiments.stability.plan import (
    ABLATION_ARMS,
    ABLATION_BASELINE,
    ALL_ARMS,
    CHANCE_LOSS,
    DENSE_ARMS,
    FAILED_EPOCH,
    FAILED_LOSS,
    MAIN_ARMS,
    PAIRS,
    PEAK_STEPS,
    PREACT_ARMS,
    READING_ARMS,
    READING_BASELINES,
    READING_MAX_FAILED,
    READING_SEEDS,
    SPIKE_LOSS,
    Arm,
    arm,
    reading_decision,
)
from derive.experiments.stability.readout import RunFigures, read_study
from derive.experiments.stats import fisher_p, mean_std, permutation_p
from derive.experiments.tables import markdown_table, write_report

SIGNIFICANT = 0.05  # the doc calls a difference clear when its exact two-sided p is below this
STUDY_COMMAND = (
    "derive stability run --data-dir ../shared/data/cifar-10-head --out docs/results/stability"
)
# Seeds per arm of the committed study, by the arm's group.
PLANNED = {"main": 10, "dense": 10, "preact": 10, "ablation": 4, "readings": READING_SEEDS}
PLANNED_CORE_HOURS = 3.9  # estimated before the study from the per-step costs on this CPU
# The pre-activation 164 pair, estimated when it was added: 20 runs at 1.96 × a ResNet-56 run's
# FLOPs (plan.STEP_COST), from the ResNet-56 runs' time alone.
PREACT_CORE_HOURS = 1.2
FIGURES = ("losses.png", "gradnorms.png", "features.png")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _ms(values: Sequence[float], digits: int = 2) -> str:
    mean, std = mean_std(values)
    if mean is None:
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def _count(runs: Sequence[RunFigures], flag: Callable[[RunFigures], bool | None]) -> str:
    known = [flag(r) for r in runs if flag(r) is not None]
    return f"{sum(known)}/{len(known)}" if known else "—"


def _values(runs: Sequence[RunFigures], get: Callable[[RunFigures], float | None]) -> list[float]:
    return [v for v in (get(r) for r in runs) if v is not None and math.isfinite(v)]


def _epoch_loss(epoch: int) -> Callable[[RunFigures], float | None]:
    return lambda r: r.epoch_losses[epoch - 1] if len(r.epoch_losses) >= epoch else None


FIGURE_COLUMNS: tuple[tuple[str, Callable[[RunFigures], float | None], int], ...] = (
    ("initial loss", lambda r: r.initial_loss, 2),
    (f"peak loss, steps 1–{PEAK_STEPS}", lambda r: r.peak_loss, 2),
    (f"largest gradient norm, steps 1–{PEAK_STEPS}", lambda r: r.max_grad_norm, 1),
    ("epoch-1 train loss", _epoch_loss(1), 3),
    (f"epoch-{FAILED_EPOCH} train loss", _epoch_loss(FAILED_EPOCH), 3),
    ("test accuracy % at the end", lambda r: r.final_test_acc, 1),
)


def arm_table(by_arm: dict[str, list[RunFigures]], arms: Sequence[Arm]) -> list[str]:
    head = ["Arm", "n", *(c[0] for c in FIGURE_COLUMNS), "spiked", "failed to learn"]
    rows = []
    for a in arms:
        runs = by_arm.get(a.name, [])
        if not runs:
            continue
        rows.append(
            [
                a.label,
                str(len(runs)),
                *(_ms(_values(runs, get), digits) for _, get, digits in FIGURE_COLUMNS),
                _count(runs, lambda r: r.spiked),
                _count(runs, lambda r: r.failed),
            ]
        )
    return markdown_table(head, rows)


def _comparison(
    base: list[RunFigures], other: list[RunFigures]
) -> dict[str, tuple[float | None, float | None]]:
    """(difference of means other − base, exact p) per figure, and the failed/spiked Fisher p."""
    out: dict[str, tuple[float | None, float | None]] = {}
    for name, get, _ in FIGURE_COLUMNS:
        a, b = _values(base, get), _values(other, get)
        diff = (statistics.fmean(b) - statistics.fmean(a)) if a and b else None
        out[name] = (diff, permutation_p(a, b))
    for name, flag in (("spiked", lambda r: r.spiked), ("failed", lambda r: r.failed)):
        a = [flag(r) for r in base if flag(r) is not None]
        b = [flag(r) for r in other if flag(r) is not None]
        out[name] = (None, fisher_p(sum(a), len(a), sum(b), len(b)) if a and b else None)
    return out


def pairs_table(by_arm: dict[str, list[RunFigures]], pairs: Sequence[tuple[str, str]]) -> list[str]:
    keys = (
        "initial loss",
        f"peak loss, steps 1–{PEAK_STEPS}",
        f"epoch-{FAILED_EPOCH} train loss",
        "test accuracy % at the end",
    )
    head = ["Baseline → other", *(f"{k}: Δ (p)" for k in keys), "spiked (p)", "failed (p)"]
    rows = []
    for base_name, other_name in pairs:
        base, other = by_arm.get(base_name, []), by_arm.get(other_name, [])
        if not base or not other:
            continue
        comp = _comparison(base, other)
        cells = []
        for key in keys:
            diff, p = comp[key]
            cells.append("—" if diff is None else f"{diff:+.2f} ({_p(p)})")
        spiked = f"{_count(base, lambda r: r.spiked)} → {_count(other, lambda r: r.spiked)} ({_p(comp['spiked'][1])})"
        failed = f"{_count(base, lambda r: r.failed)} → {_count(other, lambda r: r.failed)} ({_p(comp['failed'][1])})"
        rows.append([f"{arm(base_name).label} → {arm(other_name).label}", *cells, spiked, failed])
    return markdown_table(head, rows)


def _rate(runs: list[RunFigures], flag: Callable[[RunFigures], bool | None]) -> tuple[int, int]:
    known = [flag(r) for r in runs if flag(r) is not None]
    return sum(known), len(known)


def _peak_loss(r: RunFigures) -> float | None:
    return r.peak_loss


def _failed(r: RunFigures) -> bool | None:
    return r.failed


def _series_context(title: str, res: list[RunFigures], hb: list[RunFigures]) -> dict[str, object]:
    """ResNet against HBNet at one depth: spikes, peak loss and failures, with exact p-values."""
    comp = _comparison(res, hb)
    rp, hp = _values(res, _peak_loss), _values(hb, _peak_loss)
    ratio = statistics.fmean(rp) / statistics.fmean(hp) if rp and hp else None
    return {
        "title": title,
        "spiked_res": _rate(res, lambda r: r.spiked),
        "spiked_hb": _rate(hb, lambda r: r.spiked),
        "peak_res": _ms(rp),
        "peak_hb": _ms(hp),
        "ratio": f"{ratio:.2g}" if ratio is not None else None,
        "peak_p": _p(comp[f"peak loss, steps 1–{PEAK_STEPS}"][1]),
        "failed_res": _rate(res, _failed),
        "failed_hb": _rate(hb, _failed),
        "fail_p": _p(comp["failed"][1]),
    }


def _clearly(p: float | None) -> bool:
    return p is not None and p < SIGNIFICANT


def _depth110_context(res: list[RunFigures], hb: list[RunFigures]) -> dict[str, object]:
    """The verdict at depth 110: does ResNet spike, fail, or HBNet's gradients grow, clearly more."""
    comp = _comparison(res, hb)
    fail_p = comp["failed"][1]
    fr, fh = _rate(res, _failed), _rate(hb, _failed)
    rg, hg = (_values(x, lambda r: r.max_grad_norm) for x in (res, hb))
    grad_p = comp[f"largest gradient norm, steps 1–{PEAK_STEPS}"][1]
    spikes = _clearly(comp[f"peak loss, steps 1–{PEAK_STEPS}"][1]) and statistics.fmean(
        _values(res, _peak_loss)
    ) > statistics.fmean(_values(hb, _peak_loss))
    hb_gradients = _clearly(grad_p) and rg and hg and statistics.fmean(hg) > statistics.fmean(rg)
    return {
        "spikes": spikes,
        "fails": _clearly(fail_p) and fr[0] / fr[1] > fh[0] / fh[1],
        "failed_res": fr,
        "failed_hb": fh,
        "fail_p": _p(fail_p),
        "gradient_ratio": (
            f"{statistics.fmean(hg) / statistics.fmean(rg):.3g}" if hb_gradients else None
        ),
        "grad_p": _p(grad_p),
    }


def _warmup_context(res: list[RunFigures], warm: list[RunFigures]) -> dict[str, object]:
    """ResNet-110 with and without He et al.'s warm-up."""
    comp = _comparison(res, warm)
    taken = [r.warmup_steps_taken for r in warm if r.warmup_steps_taken is not None]
    return {
        "steps": _ms([float(t) for t in taken], 0),
        "peak_res": _ms(_values(res, _peak_loss)),
        "peak_warm": _ms(_values(warm, _peak_loss)),
        "peak_p": _p(comp[f"peak loss, steps 1–{PEAK_STEPS}"][1]),
        "failed_res": _rate(res, _failed),
        "failed_warm": _rate(warm, _failed),
        "fail_p": _p(comp["failed"][1]),
    }


def verdict(by_arm: dict[str, list[RunFigures]]) -> list[str]:
    """Plain sentences on the claim (templates/stability_verdict.md.j2), chosen by fixed rules."""
    series = [(f"Depth {d}", f"resnet{d}", f"hbnet{d}") for d in (20, 56, 110)]
    series.append(("Depth 164, pre-activation bottleneck", *(a.name for a in PREACT_ARMS)))
    present = [(t, by_arm.get(r, []), by_arm.get(h, [])) for t, r, h in series]
    res, hb, warm = (by_arm.get(n, []) for n in ("resnet110", "hbnet110", "resnet110-warmup"))
    text = render(
        "stability_verdict.md.j2",
        spike_loss=SPIKE_LOSS,
        peak_steps=PEAK_STEPS,
        series=[_series_context(t, r, h) for t, r, h in present if r and h],
        depth110=_depth110_context(res, hb) if res and hb else None,
        warmup=_warmup_context(res, warm) if res and warm else None,
    )
    lines = text.removesuffix("\n").split("\n") if text else []
    return lines + _preact_paragraph(by_arm)


def _preact_paragraph(by_arm: dict[str, list[RunFigures]]) -> list[str]:
    """What the pre-activation 164 pair adds: the same comparison on another block design."""
    res, hb = (by_arm.get(a.name, []) for a in PREACT_ARMS)
    if not res or not hb:
        return []
    comp = _comparison(res, hb)
    rg, hg = (_values(x, lambda r: r.max_grad_norm) for x in (res, hb))
    grad_p = comp[f"largest gradient norm, steps 1–{PEAK_STEPS}"][1]
    sr, fr = _rate(res, lambda r: r.spiked), _rate(res, lambda r: r.failed)
    post = by_arm.get("resnet110", [])
    against = ""
    block_sentence = ""
    if post:
        s110, f110 = _rate(post, lambda r: r.spiked), _rate(post, lambda r: r.failed)
        against = (
            f" (post-activation ResNet-110: spiked {s110[0]}/{s110[1]}, failed {f110[0]}/{f110[1]})"
        )
        block_p = fisher_p(fr[0], fr[1], f110[0], f110[1]) if fr[1] and f110[1] else None
        if block_p is not None and block_p < SIGNIFICANT and fr[0] / fr[1] < f110[0] / f110[1]:
            diff, p2 = comp[f"epoch-{FAILED_EPOCH} train loss"]
            clear = diff is not None and p2 is not None and p2 < SIGNIFICANT
            how = (
                ("learns clearly better" if diff < 0 else "learns clearly worse")
                if clear
                else "learns neither clearly better nor worse"
            )
            block_sentence = (
                f" The deeper pre-activation ResNet failed clearly less often than the "
                f"post-activation ResNet-110 (Fisher p = {_p(block_p)}): within this budget the "
                "instability belongs to the post-activation block, not to depth alone; and with "
                "pre-activation blocks HBNet "
                + how
                + f" (epoch-{FAILED_EPOCH} train loss {diff:+.2f} against ResNet-164's, "
                f"p = {_p(p2)})."
            )
    text = (
        "The depth-164 pair is He et al.'s pre-activation bottleneck design (Identity Mappings, "
        "2016: BN and ReLU before each convolution, nothing after the sum), not the next point of the "
        "20/56/110 series, so it tells whether what is seen above belongs to the post-activation "
        f"block. Pre-activation ResNet-164 spiked in {sr[0]} of {sr[1]} runs and failed in {fr[0]} of "
        f"{fr[1]}{against}."
    )
    if rg and hg:
        text += (
            f" HBNet-164's largest gradient norm over the first {PEAK_STEPS} steps is "
            f"{statistics.fmean(hg) / statistics.fmean(rg):.3g} times ResNet-164's "
            f"(p = {_p(grad_p)})."
        )
    return ["", text + block_sentence]


def _ablation_arm_context(
    a: Arm, base: list[RunFigures], other: list[RunFigures]
) -> dict[str, object]:
    """One changed choice of the recipe against the ResNet-56 baseline."""
    comp = _comparison(base, other)
    diff, p = comp[f"peak loss, steps 1–{PEAK_STEPS}"]
    fail_p = comp["failed"][1]
    fb, fo = _rate(base, _failed), _rate(other, _failed)
    peak_clear = p is not None and p < SIGNIFICANT
    fail_clear = fail_p is not None and fail_p < SIGNIFICANT
    return {
        "change": a.change,
        "short": a.label.removeprefix(f"{arm(ABLATION_BASELINE).label}, "),
        "peak_lower": diff is not None and diff < 0,
        "peak_clear": peak_clear,
        "peak_p": _p(p),
        "peak_base": _ms(_values(base, _peak_loss)),
        "peak_other": _ms(_values(other, _peak_loss)),
        "initial_base": _ms(_values(base, lambda r: r.initial_loss)),
        "initial_other": _ms(_values(other, lambda r: r.initial_loss)),
        "count_base": _count(base, _failed),
        "count_other": _count(other, _failed),
        "fail_p": _p(fail_p),
        "fail_clear": fail_clear,
        "fewer": fail_clear and fo[0] / fo[1] < fb[0] / fb[1],
        "failed_base": fb,
        "failed_other": fo,
        "carries": peak_clear or fail_clear,
    }


def ablation_sentences(by_arm: dict[str, list[RunFigures]]) -> list[str]:
    """What each changed choice of the recipe does (templates/stability_ablation.md.j2)."""
    base = by_arm.get(ABLATION_BASELINE, [])
    if not base:
        return []
    arms = [
        _ablation_arm_context(a, base, by_arm[a.name]) for a in ABLATION_ARMS if by_arm.get(a.name)
    ]
    text = render("stability_ablation.md.j2", arms=arms)
    return text.removesuffix("\n").split("\n") if text else []


def probe_table(probes: dict[str, dict], arms: Sequence[Arm]) -> list[str]:
    """Per arm, over its probed seeds: std(z) of each stage's last block at step 1 and after K updates."""
    head = [
        "Arm",
        "seeds",
        "std z, stage 1/2/3 ends, step 1",
        "…after K updates",
        "largest std z, step 1",
        "logit std, step 1",
        "loss, step 1",
        "gradient norm, step 1, per part: stem / stages / head",
        "weight norm after K updates ÷ at init: stem / stages / head",
    ]
    rows = []
    steps = None
    for a in arms:
        mine = [p for name, p in sorted(probes.items()) if name.rsplit("-s", 1)[0] == a.name]
        if not mine:
            continue
        steps = mine[0]["steps"]

        def stage_ends(p: dict, step: int) -> list[float]:
            blocks = [tuple(b) for b in p["blocks"]]
            ends = [
                max(i for i, b in enumerate(blocks) if b[0] == s)
                for s in sorted({b[0] for b in blocks})
            ]
            return [p["z_std"][step][i] for i in ends]

        first = [stage_ends(p, 0) for p in mine]
        last = [stage_ends(p, -1) for p in mine]
        avg = lambda rows_, j: statistics.fmean(r[j] for r in rows_)  # noqa: E731
        rows.append(
            [
                a.label,
                ", ".join(sorted(str(p["seed"]) for p in mine)),
                " / ".join(f"{avg(first, j):.2f}" for j in range(len(first[0]))),
                " / ".join(f"{avg(last, j):.2f}" for j in range(len(last[0]))),
                f"{statistics.fmean(max(p['z_std'][0]) for p in mine):.2f}",
                f"{statistics.fmean(p['logit_std'][0] for p in mine):.2f}",
                f"{statistics.fmean(p['loss'][0] for p in mine):.2f}",
                _parts(mine, "part_grad_norm", lambda p, i: p["part_grad_norm"][0][i], "{:.3g}"),
                _parts(
                    mine,
                    "part_weight_norm",
                    lambda p, i: p["part_weight_norm"][-1][i] / p["part_weight_norm"][0][i],
                    "{:.2f}",
                ),
            ]
        )
    table = markdown_table(head, rows)
    return [line.replace("K updates", f"{steps - 1} updates") for line in table] if steps else table


def _parts(probes: list[dict], key: str, value: Callable[[dict, int], float], fmt: str) -> str:
    """Mean over the probes of value(p, i) per part, ' / '-joined ('—' for probes without parts)."""
    if not all(key in p and p.get("parts") for p in probes):
        return "—"
    names = probes[0]["parts"]
    return " / ".join(
        fmt.format(statistics.fmean(value(p, i) for p in probes)) for i in range(len(names))
    )


def _probe_mean(
    probes: dict[str, dict], arm_name: str, value: Callable[[dict], float]
) -> float | None:
    mine = [p for name, p in probes.items() if name.rsplit("-s", 1)[0] == arm_name]
    return statistics.fmean(value(p) for p in mine) if mine else None


def _part(p: dict, key: str, name: str, step: int) -> float:
    return p[key][step][p["parts"].index(name)]


def _last_z(p: dict) -> float:
    return p["z_std"][0][-1]


def _logit_std(p: dict) -> float:
    return p["logit_std"][0]


def _first_loss(p: dict) -> float:
    return p["loss"][0]


def _stem_grad(p: dict) -> float:
    return _part(p, "part_grad_norm", "stem", 0)


def _head_grad(p: dict) -> float:
    return _part(p, "part_grad_norm", "head", 0)


def _stem_growth(p: dict) -> float:
    return _part(p, "part_weight_norm", "stem", -1) / _part(p, "part_weight_norm", "stem", 0)


# what the mechanism paragraph reports per network, and how it prints each
_MEASURES = {
    "last_z": (_last_z, "{:.2f}"),
    "logits": (_logit_std, "{:.2f}"),
    "loss": (_first_loss, "{:.2f}"),
    "stem": (_stem_grad, "{:.3g}"),
    "head": (_head_grad, "{:.3g}"),
    "grow": (_stem_growth, "{:.3g}"),
}


def _family_series(probes: dict[str, dict], family: str, depths: list[int], parts: bool) -> dict:
    """Each measure of `family` (resnet, hbnet) at `depths`, as 'a / b / c' (— where not probed)."""
    names = list(_MEASURES) if parts else ["last_z", "logits", "loss"]
    out = {}
    for name in names:
        value, fmt = _MEASURES[name]
        cells = [_probe_mean(probes, f"{family}{d}", value) for d in depths]
        out[name] = " / ".join("—" if v is None else fmt.format(v) for v in cells)
    return out


def _preact_series(probes: dict[str, dict], parts: bool) -> dict | None:
    """Each measure of the pre-activation 164 pair as 'ResNet a, HBNet b'; None if not probed."""
    res_name, hb_name = (a.name for a in PREACT_ARMS)
    if (
        _probe_mean(probes, res_name, _last_z) is None
        or _probe_mean(probes, hb_name, _last_z) is None
    ):
        return None
    names = list(_MEASURES) if parts else ["last_z", "logits", "loss"]
    out = {}
    for name in names:
        value, fmt = _MEASURES[name]
        r, h = (_probe_mean(probes, n, value) for n in (res_name, hb_name))
        out[name] = f"ResNet {fmt.format(r)}, HBNet {fmt.format(h)}"
    return out


def mechanism(probes: dict[str, dict]) -> list[str]:
    """The measured reasons, by depth, then what the recurrences say about them
    (templates/stability_mechanism.md.j2)."""
    depths = [
        d
        for d in (20, 56, 110)
        if any(f"{f}{d}-s" in n for n in probes for f in ("resnet", "hbnet"))
    ]
    if not depths:
        return []
    parts = all(p.get("parts") for p in probes.values())
    text = render(
        "stability_mechanism.md.j2",
        depths=" / ".join(str(d) for d in depths),
        res=_family_series(probes, "resnet", depths, parts),
        hb=_family_series(probes, "hbnet", depths, parts),
        preact=_preact_series(probes, parts),
        has_parts=parts,
        steps=next(iter(probes.values()))["steps"] - 1,
        chance_loss=CHANCE_LOSS,
    )
    return text.removesuffix("\n").split("\n")


def _reading_context(a: Arm, by_arm: dict[str, list[RunFigures]]) -> dict[str, object]:
    """One reading of HBNet-110: its counts, its tests against the baselines, its verdict."""
    runs = by_arm.get(a.name, [])
    failed, spiked = _rate(runs, _failed), _rate(runs, lambda r: r.spiked)
    against = []
    for name in READING_BASELINES:
        base = by_arm.get(name, [])
        bf = _rate(base, _failed)
        p = fisher_p(bf[0], bf[1], failed[0], failed[1]) if bf[1] and failed[1] else None
        against.append({"label": arm(name).label, "failed": bf, "p": _p(p)})
    return {
        "label": a.label,
        "short": a.label.removeprefix(f"{arm(a.model).label}, "),
        "change": a.change,
        "n": len(runs),
        "failed": failed,
        "spiked": spiked,
        "diverged": sum(r.status == "diverged" for r in runs),
        "against": against,
        "holds": reading_decision(failed[0], failed[1]),
    }


def _reading_count(n: int, holds: bool | None) -> str:
    """The n cell: below the plan, still running while open, decided once the rule decides."""
    if n >= READING_SEEDS:
        return f"{n}"
    return f"{n} of {READING_SEEDS}, " + ("still running" if holds is None else "decided")


def readings_table(contexts: Sequence[dict]) -> list[str]:
    """One row per reading, every planned reading shown (n below the plan: still running, or
    decided when the runs so far already settle the verdict)."""
    head = ["Reading", "n", "spiked", "failed to learn"]
    head += [f"{arm(n).label} failed (Fisher p)" for n in READING_BASELINES]
    head.append("verdict")
    rows = []
    for c in contexts:
        n = c["n"]
        verdict_cell = {True: "the claim holds", False: "the claim does not hold", None: "open"}
        rows.append(
            [
                c["label"],
                _reading_count(n, c["holds"]),
                f"{c['spiked'][0]}/{c['spiked'][1]}" if c["spiked"][1] else "—",
                f"{c['failed'][0]}/{c['failed'][1]}" if c["failed"][1] else "—",
                *(
                    f"{b['failed'][0]}/{b['failed'][1]} ({b['p']})" if b["failed"][1] else "—"
                    for b in c["against"]
                ),
                verdict_cell[c["holds"]],
            ]
        )
    return markdown_table(head, rows)


def readings(by_arm: dict[str, list[RunFigures]]) -> str:
    """The readings section (templates/stability_readings.md.j2): table, sentences, verdict."""
    contexts = [_reading_context(a, by_arm) for a in READING_ARMS]
    return render(
        "stability_readings.md.j2",
        arms=contexts,
        table="\n".join(readings_table(contexts)),
        seeds=READING_SEEDS,
        max_failed=READING_MAX_FAILED,
        baselines=[
            {"label": arm(n).label, "failed": _rate(by_arm.get(n, []), _failed)}
            for n in READING_BASELINES
        ],
        devices=sorted({r.device for a in READING_ARMS for r in by_arm.get(a.name, [])}),
        baseline_devices=sorted({r.device for n in READING_BASELINES for r in by_arm.get(n, [])}),
        holding=[c["short"] for c in contexts if c["holds"]],
        open_=[c["short"] for c in contexts if c["holds"] is None],
    ).rstrip("\n")


def _by_arm(runs: Sequence[RunFigures]) -> dict[str, list[RunFigures]]:
    """The complete runs, grouped by arm name in the order they were read."""
    by_arm: dict[str, list[RunFigures]] = {}
    for r in runs:
        if r.complete:
            by_arm.setdefault(r.arm.name, []).append(r)
    return by_arm


def _yes_no(flag: bool | None) -> str:
    return {True: "yes", False: "no", None: "—"}[flag]


def runs_table(runs: Sequence[RunFigures]) -> list[str]:
    """One row per run folder, complete or not."""
    head = [
        "Run",
        "status",
        "steps",
        "initial loss",
        "peak loss (step)",
        "largest grad norm",
        "epoch losses",
        "test acc %",
        "spiked",
        "failed",
        "warm-up steps",
        "time",
    ]
    rows = [
        [
            f"`{Path(r.path).name}`",
            r.status if r.complete else f"{r.status} (left out)",
            str(r.steps_done),
            _fmt(r.initial_loss),
            f"{_fmt(r.peak_loss)} ({r.peak_step})" if r.peak_step else "—",
            _fmt(r.max_grad_norm, 1),
            " / ".join(f"{v:.3f}" for v in r.epoch_losses) or "—",
            _fmt(r.final_test_acc, 1),
            _yes_no(r.spiked),
            _yes_no(r.failed),
            "—" if r.warmup_steps_taken is None else str(r.warmup_steps_taken),
            f"{r.seconds:.0f} s",
        ]
        for r in runs
    ]
    return markdown_table(head, rows)


def _setup_context(runs: Sequence[RunFigures], probes: dict[str, dict]) -> dict[str, object]:
    """The numbers of the doc's opening sections: budget, runs in, seeds, compute, criteria."""
    complete = [r for r in runs if r.complete]
    main_epochs = sorted({r.epochs for r in complete if r.arm.group != "dense"})
    preact_hours = sum(r.seconds for r in runs if r.arm.group == "preact") / 3600
    differences = [
        p["max_loss_difference_to_steps_csv"]
        for p in probes.values()
        if p.get("max_loss_difference_to_steps_csv") is not None
    ]
    return {
        "main_epochs": main_epochs,
        "main_steps": [80 * e for e in main_epochs],
        "dense_epochs": sorted({r.epochs for r in complete if r.arm.group == "dense"}),
        "budget_steps": 80 * max(main_epochs or [2]),
        "complete": len(complete),
        "planned": sum(PLANNED[a.group] for a in ALL_ARMS),
        "planned_per_arm": PLANNED,
        "probes": len(probes),
        "study_command": STUDY_COMMAND,
        "seeds": sorted({r.seed for r in complete}),
        "devices": sorted({r.device for r in runs}),
        "hours": sum(r.seconds for r in runs) / 3600,
        # said only when the pre-activation pair ran well over its estimate
        "preact_hours": preact_hours if preact_hours > 1.5 * PREACT_CORE_HOURS else None,
        "planned_core_hours": PLANNED_CORE_HOURS,
        "preact_core_hours": PREACT_CORE_HOURS,
        "failed_epoch": FAILED_EPOCH,
        "failed_loss": FAILED_LOSS,
        "chance_loss": CHANCE_LOSS,
        "spike_loss": SPIKE_LOSS,
        "peak_steps": PEAK_STEPS,
        "significant": SIGNIFICANT,
        "max_difference": max(differences) if differences else None,
    }


def _results_context(
    by_arm: dict[str, list[RunFigures]], probes: dict[str, dict]
) -> dict[str, str]:
    """The doc's tables and computed paragraphs, each as markdown text."""
    ablation_arms = [arm(ABLATION_BASELINE), *ABLATION_ARMS]
    return {
        "main_table": "\n".join(arm_table(by_arm, MAIN_ARMS + DENSE_ARMS + PREACT_ARMS)),
        "main_pairs": "\n".join(
            pairs_table(by_arm, [p for p in PAIRS if arm(p[1]).group != "ablation"])
        ),
        "verdict": "\n".join(verdict(by_arm)),
        "probe_table": "\n".join(probe_table(probes, ALL_ARMS)),
        "mechanism": "\n".join(mechanism(probes)),
        "ablation_table": "\n".join(arm_table(by_arm, ablation_arms)),
        "ablation_pairs": "\n".join(
            pairs_table(by_arm, [p for p in PAIRS if arm(p[1]).group == "ablation"])
        ),
        "ablation": "\n".join(ablation_sentences(by_arm)),
        "readings": readings(by_arm),
    }


def build_stability_report(study: str | Path, command: str) -> str:
    """The text of the study's doc: the numbers from the files, the prose from stability.md.j2."""
    runs, probes = read_study(study)
    text = render(
        "stability.md.j2",
        command=command,
        **_setup_context(runs, probes),
        **_results_context(_by_arm(runs), probes),
        runs_table="\n".join(runs_table(runs)),
    )
    return text.rstrip() + "\n"


def write_study_report(
    study: str | Path, out: str | Path, command: str, figures: bool = True
) -> list[Path]:
    """Write the doc (and, with matplotlib, its figures into STUDY); return the paths written."""
    text = build_stability_report(study, command)
    written = [write_report(out, text)]
    if figures:
        written += draw_figures(study)
    return written
