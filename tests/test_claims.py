"""docs/results/claims.md: rebuilt byte for byte, every link, test and quotation real, and the
computed statuses checked against independent sources (the zoo, the run files, hand derivations)."""

from __future__ import annotations

import csv
import itertools
import json
import math
import random
import re
from pathlib import Path

import pytest

from derive.experiments import claims
from derive.experiments.claims import (
    AGAINST,
    CORRECTED,
    PRINTED_SIZES,
    REPRODUCED,
    STATUSES,
    UNDECIDED,
    Claim,
    Evidence,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


@pytest.fixture(scope="module")
def topics() -> tuple[claims.Topic, ...]:
    return claims.topics()


def _rows(topics, prefix: str) -> list[Claim]:
    return [c for t in topics for c in t.claims if c.claim.startswith(prefix)]


def _one(topics, prefix: str) -> Claim:
    (row,) = _rows(topics, prefix)
    return row


def test_claims_doc_is_rebuilt_exactly() -> None:
    committed = (RESULTS / "claims.md").read_text(encoding="utf-8")
    assert claims.build_markdown() == committed, (
        "stale docs/results/claims.md: run derive regenerate --only claims"
    )


def test_the_doc_records_the_command_that_rebuilds_it(tmp_path, capsys) -> None:
    from derive.cli import main

    committed = (RESULTS / "claims.md").read_text(encoding="utf-8")
    assert (
        committed.split("```", 2)[1].strip() == claims.COMMAND == "derive regenerate --only claims"
    )
    assert main(["-q", "regenerate", "--check", "--only", "claims"]) == 0, capsys.readouterr().out
    out = tmp_path / "claims.md"
    assert claims.main(["--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == committed


def test_every_status_is_one_of_four_and_every_topic_has_rows(topics) -> None:
    assert len(topics) >= 8
    for topic in topics:
        assert topic.claims, topic.title
        for row in topic.claims:
            assert row.status in STATUSES
            assert row.evidence, row.claim
    with pytest.raises(ValueError):
        Claim("x", "probably", "", (), "")


def _headings(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return {line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#")}


def test_every_evidence_link_test_and_quotation_is_real(topics) -> None:
    for topic in topics:
        for row in topic.claims:
            for evidence in row.evidence:
                path = ROOT / evidence.path
                assert path.is_file(), evidence.path
                text = path.read_text(encoding="utf-8")
                if evidence.anchor:
                    assert evidence.anchor in _headings(path), (evidence.path, evidence.anchor)
                if evidence.test:
                    assert re.search(rf"^def {evidence.test}\(", text, re.M), evidence
                if evidence.quote:
                    assert " ".join(evidence.quote.split()) in " ".join(text.split()), evidence


def test_links_point_where_github_puts_the_anchors() -> None:
    """The slug matches anchors written by hand elsewhere in the results docs."""
    readme = (RESULTS / "README.md").read_text(encoding="utf-8")
    heading = "CIFAR-10-head: the 10 % subset (not comparable with the papers)"
    assert f"cifar.md#{claims.slug(heading)})" in readme
    link = claims.link(Evidence("docs/results/cifar.md", anchor=heading))
    assert link.endswith("(cifar.md#cifar-10-head-the-10--subset-not-comparable-with-the-papers)")
    assert claims.link(Evidence("tests/test_zoo.py", test="t")) == "[`t`](../../tests/test_zoo.py)"
    assert claims.slug("The papers' errata") == "the-papers-errata"


def test_rerun_commands_name_real_files_and_tests(topics) -> None:
    for row in (c for t in topics for c in t.claims):
        for part in row.command.split("; "):
            words = part.split()
            if "pytest" in words:
                path, _, test = words[-1].partition("::")
                assert re.search(rf"^def {test}\(", (ROOT / path).read_text(), re.M), part
            for word in words:
                if word.startswith(("bench/", "tests/")):
                    assert (ROOT / word.split("::")[0]).is_file(), part


def test_energy_statuses_match_the_hand_derivations(topics) -> None:
    """Wrong as printed, worked out by hand: ACML's sigmoid, tanh and swish differentiate to the
    wrong function, its leaky ReLU has α u² (twice the slope), softsign takes the log of a negative
    number for u < 0 and ELU jumps by a at 0 in both papers; the rest hold."""
    wrong = {
        "ACML 2018, Table 1": {"sigmoid", "tanh", "softsign", "leaky_relu", "elu", "swish"},
        "SCIS 2023, appendix Table A1": {"softsign", "elu"},
    }
    rows = claims.energy_claims()
    assert len(rows) == 16
    for row in rows:
        name = row.claim.split(":")[0]
        source = row.claim.rsplit("(", 1)[1].rstrip(")")
        expected = CORRECTED if name in wrong[source] else REPRODUCED
        assert row.status == expected, row.claim
        if row.status == CORRECTED:
            assert "corrected: Ψ(u) = " in row.why


def _zoo_parameters(name: str) -> int:
    import torch

    from derive.models import create_model

    with torch.device("meta"):
        model = create_model(name)
    return sum(p.numel() for p in model.parameters())


def test_parameter_statuses_agree_with_the_zoo_and_the_other_transcriptions(topics) -> None:
    """Each row's status follows from the zoo's own count (built on the meta device here, not read
    from models.md), and the printed values agree with the two other transcriptions of the tables."""
    import importlib.util

    from derive.experiments.paper_tables import CIFAR_PRINTED, SCIS_CIFAR

    spec = importlib.util.spec_from_file_location("model_stats", ROOT / "bench" / "model_stats.py")
    model_stats = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model_stats)
    table1 = {r.zoo: r.params for r in CIFAR_PRINTED if r.source == SCIS_CIFAR and r.zoo}
    for size in PRINTED_SIZES:
        assert float(size.params) == model_stats.PRINTED[size.zoo][0]
        if size.zoo in table1:
            assert f"{size.params}M" == table1[size.zoo]
        millions = _zoo_parameters(size.zoo) / 1e6
        digits = len(size.params.split(".")[1])
        agree = math.isclose(round(millions, digits), float(size.params))
        row = _one(topics, f"{size.printed_name}: {size.params}M parameters")
        assert row.status == (REPRODUCED if agree else AGAINST), row.claim
    assert _one(topics, "DenseNet (k = 12, L = 52): 1.4M").status == AGAINST


def _final_mse() -> dict[tuple[str, int], float]:
    with open(RESULTS / "simulation" / "final.csv", newline="") as handle:
        return {
            (r["algorithm"], int(r["depth"])): float(r["final_train_mse"])
            for r in csv.DictReader(handle)
        }


def test_simulation_statuses_follow_from_final_csv(topics) -> None:
    final = _final_mse()
    depths = (10, 20, 30, 40)
    admm_worst = all(
        final[("admm", d)]
        > max(final[(a, d)] for a in ("gd", "heavyball", "nesterov", "nesterov2"))
        for d in depths
    )
    assert _one(topics, "B.3: the ADMM network").status == (REPRODUCED if admm_worst else AGAINST)
    beat = all(
        final[(a, d)] < final[("gd", d)]
        for a in ("heavyball", "nesterov", "nesterov2")
        for d in depths
    )
    assert _one(topics, "B.3: the HB, AGD and AGD2").status == (REPRODUCED if beat else AGAINST)
    # AGD2 at depth 10 memorizes (below the best constant), so its MSE rises to depth 20.
    best_constant = json.loads((RESULTS / "simulation" / "simulation.json").read_text())["data"][
        "best_constant_mse"
    ]
    assert final[("nesterov2", 10)] < best_constant < final[("nesterov2", 20)] + 1e-5
    assert _one(topics, "B.3: the AGD2 network's MSE falls").status == AGAINST
    # Printed best at depth 10 is AGD (1.00270); ours is HB.
    assert (
        min(("gd", "heavyball", "nesterov", "nesterov2", "admm"), key=lambda a: final[(a, 10)])
        == "heavyball"
    )
    assert _one(topics, "Table B1: the best network per depth").status == AGAINST
    assert _one(topics, "Table B1: the printed MSE values").status == UNDECIDED


def _spiked(run: Path) -> bool:
    """Some batch loss of the first 80 steps above twice the chance loss (stability.md's rule)."""
    with open(run / "steps.csv", newline="") as handle:
        losses = [float(r["loss"]) for r in csv.DictReader(handle) if int(r["step"]) <= 80]
    return any(not math.isfinite(x) or x > 2 * math.log(10) for x in losses)


def test_stability_status_follows_from_the_runs_steps(topics) -> None:
    runs = RESULTS / "stability" / "runs"
    resnet = [_spiked(p) for p in sorted(runs.glob("resnet110-s*"))]
    hbnet = [_spiked(p) for p in sorted(runs.glob("hbnet110-s*"))]
    assert len(resnet) == len(hbnet) == 10
    row = _one(topics, "SCIS §8 (ACML §6): very deep ResNet")
    assert f"ResNet-110 {sum(resnet)}/10, HBNet-110 {sum(hbnet)}/10" in row.why
    assert row.status == (REPRODUCED if sum(hbnet) < sum(resnet) else UNDECIDED)


def test_accuracy_rows_stay_undecided_without_full_data_runs(topics) -> None:
    for summary in (RESULTS / "runs").glob("*/*/summary.json"):
        data_dir = json.loads(summary.read_text())["options"].get("data_dir") or ""
        assert "head" in data_dir, f"{summary}: a full-data run: decide the accuracy rows from it"
    for prefix in ("SCIS §8: HBNet performs", "SCIS §8: AGDNet performs", "SCIS §8 Table 2"):
        assert _one(topics, prefix).status == UNDECIDED
    # The papers' own Table 1 has HBNet (n = 9) behind ResNet on CIFAR-10: 10.17 against 10.05.
    assert "not HBNet (n = 9) on CIFAR-10," in _one(topics, "SCIS §8: HBNet performs").claim


def test_the_conjecture_is_undecided_in_the_papers_setting_and_on_images(topics) -> None:
    assert len(_rows(topics, "SCIS §6")) == 3
    for suffix in (", shown by the simulation", ", on real images"):
        row = _one(topics, claims.CONJECTURE + suffix)
        assert row.status == UNDECIDED
        assert any(e.quote for e in row.evidence)


WELLPOSED = RESULTS / "simulation_wellposed"
HEADER = (
    "kappa,algorithm,depth,start,seed,optimizer_error,initial_error,test_error,train_error,seconds"
)


def _sign_flip_p(diffs: list[float]) -> float:
    """Two-sided exact sign-flip p of the mean, by listing every sign pattern."""
    observed = abs(sum(diffs))
    flips = list(itertools.product((1, -1), repeat=len(diffs)))
    hits = sum(
        abs(sum(s * d for s, d in zip(signs, diffs, strict=True))) >= observed - 1e-12
        for signs in flips
    )
    return hits / len(flips)


def _pair_counts(folder: Path) -> dict[tuple[float, str], list[int]]:
    """(κ, start) → [pairs, agree, significant agree, significant disagree], read with the csv
    module: a pair is two algorithms at one depth whose optimizers' geometric-mean errors differ
    by more than 1 %, "agree" the faster optimizer's network having the lower mean log error."""
    with open(folder / "runs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    logs: dict[tuple, dict[int, float]] = {}
    for r in rows:
        key = (float(r["kappa"]), r["algorithm"], int(r["depth"]), r["start"])
        logs.setdefault((*key, "test"), {})[int(r["seed"])] = math.log10(float(r["test_error"]))
        if r["start"] == "teacher":
            logs.setdefault((*key[:3], "optimizer"), {})[int(r["seed"])] = math.log10(
                float(r["optimizer_error"])
            )
    out: dict[tuple[float, str], list[int]] = {}
    algorithms = sorted({r["algorithm"] for r in rows})
    for kappa, depth, start in {(float(r["kappa"]), int(r["depth"]), r["start"]) for r in rows}:
        counts = out.setdefault((kappa, start), [0, 0, 0, 0])
        for a, b in itertools.combinations(algorithms, 2):
            opt_a, opt_b = (
                logs[(kappa, a, depth, "optimizer")],
                logs[(kappa, b, depth, "optimizer")],
            )
            net_a, net_b = (
                logs[(kappa, a, depth, start, "test")],
                logs[(kappa, b, depth, start, "test")],
            )
            seeds = sorted(set(opt_a) & set(opt_b) & set(net_a) & set(net_b))
            optimizer = sum(opt_a[s] - opt_b[s] for s in seeds) / len(seeds)
            if abs(optimizer) <= -math.log10(0.99):
                continue
            sign = 1 if optimizer < 0 else -1  # faster minus slower
            diffs = [sign * (net_a[s] - net_b[s]) for s in seeds]
            agree = sum(diffs) < 0
            significant = _sign_flip_p(diffs) < 0.05
            counts[0] += 1
            counts[1] += agree
            counts[2] += agree and significant
            counts[3] += (not agree) and significant
    return out


def _rule(pairs: int, agree: int, significant: int, against: int) -> bool:
    """The stated rule: in at least 75 % of the pairs, significant ones more than 3 × the others."""
    return agree >= 0.75 * pairs and significant > 3 * max(1, against)


def test_the_wellposed_row_follows_from_its_run_files(topics) -> None:
    """Counts recomputed here from runs.csv (csv module, an exact sign-flip test by enumeration);
    the scope from study.json."""
    row = _one(topics, claims.CONJECTURE + ", where the answer is an energy's minimiser")
    counts = _pair_counts(WELLPOSED)
    for start in ("teacher", "random"):
        pairs, agree, significant, against = (
            sum(c[i] for (_, s), c in counts.items() if s == start) for i in range(4)
        )
        assert f"{agree} of {pairs} pairs ({significant} significant, against {against} " in row.why
    holds = all(_rule(*c) for c in counts.values())
    reverse = all(_rule(c[0], c[0] - c[1], c[3], c[2]) for c in counts.values())
    assert row.status == (REPRODUCED if holds else AGAINST if reverse else UNDECIDED)
    study = json.loads((WELLPOSED / "study.json").read_text())
    depths, kappas = study["grid"]["depths"], study["grid"]["kappas"]
    scope = f"dimension {study['setting']['dim']}, depths {min(depths)}–{max(depths)}, κ = "
    assert scope + " and ".join(f"{k:g}" for k in kappas) in row.why
    assert "real images" in row.why and row.command.startswith("derive simulate --task wellposed")


def _write_study(folder: Path, order: dict[str, str], missing: int = 0) -> None:
    """A small complete study: 3 algorithms, GD slowest and AGD fastest as optimizers; each start's
    networks in the optimizers' order ("same") or the reverse ("reverse"); `missing` runs left out."""
    algorithms = ["gd", "heavyball", "nesterov"]
    kappas, depths, seeds = [10.0, 100.0], [2, 3], list(range(6))
    folder.mkdir()
    study = {
        "setting": {"dim": 4},
        "grid": {"kappas": kappas, "depths": depths, "seeds": seeds, "algorithms": algorithms},
    }
    (folder / "study.json").write_text(json.dumps(study))
    rng = random.Random(0)
    lines = [HEADER]
    for seed, kappa, (rank, algorithm), start, depth in itertools.product(
        seeds, kappas, enumerate(algorithms), ("teacher", "random"), depths
    ):
        optimizer = 0.1 / 3**rank / depth * (1 + 0.1 * rng.random())
        speed = rank if order[start] == "same" else 2 - rank
        test = 0.01 / 3**speed * (1 + 0.1 * rng.random())
        lines.append(
            f"{kappa},{algorithm},{depth},{start},{seed},{optimizer},{optimizer},{test},{test},0.1"
        )
    (folder / "runs.csv").write_text("\n".join(lines[: len(lines) - missing]) + "\n")


@pytest.mark.parametrize(
    ("order", "missing", "status"),
    [
        ({"teacher": "same", "random": "same"}, 0, REPRODUCED),
        ({"teacher": "reverse", "random": "reverse"}, 0, AGAINST),
        ({"teacher": "same", "random": "reverse"}, 0, UNDECIDED),
        ({"teacher": "same", "random": "same"}, 2, UNDECIDED),
    ],
)
def test_the_wellposed_status_flips_with_the_counts(tmp_path, order, missing, status) -> None:
    folder = tmp_path / "study"
    _write_study(folder, order, missing)
    counts = _pair_counts(folder)
    assert all(c[0] == 6 for c in counts.values())  # 3 pairs × 2 depths at each κ and start
    row = claims.wellposed_claim(folder)
    assert row.status == status, row.why
    for start in ("teacher", "random"):
        agree = sum(c[1] for (_, s), c in counts.items() if s == start)
        assert f"{agree} of 12 pairs" in row.why
    assert ("partial: 142 of 144 runs" in row.why) == bool(missing)
    assert "dimension 4, depths 2–3" in row.why


def test_the_doc_speaks_only_of_the_work_itself() -> None:
    text = (RESULTS / "claims.md").read_text(encoding="utf-8")
    pattern = r"\b(issue|session|helper|contract)s?\b|DESIGN\.md"
    assert not re.search(pattern, text, re.I), re.search(pattern, text, re.I)


def test_the_results_index_points_to_this_page_first() -> None:
    first = (RESULTS / "README.md").read_text(encoding="utf-8").splitlines()[:3]
    assert any("(claims.md)" in line for line in first)


def test_rerun_commands_of_derive_parse(topics) -> None:
    """Each `derive ...` command of the doc is accepted by the CLI's own parser (DIR, OUT: yours)."""
    import shlex

    from derive.cli import build_parser

    parser = build_parser()
    parts = [p for c in topics for row in c.claims for p in row.command.split("; ")]
    derive_parts = sorted({p for p in parts if p.startswith("derive ")})
    assert len(derive_parts) >= 8
    for part in derive_parts:
        args = parser.parse_args(shlex.split(part)[1:])
        assert args.command == part.split()[1], part


def _geometric_errors(folder: Path, depth: int, start: str) -> list[float]:
    """Geometric means over the seeds of each (κ, algorithm)'s test error at `depth`, from `start`."""
    with open(folder / "runs.csv", newline="") as handle:
        rows = [
            r for r in csv.DictReader(handle) if int(r["depth"]) == depth and r["start"] == start
        ]
    logs: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        logs.setdefault((r["kappa"], r["algorithm"]), []).append(math.log10(float(r["test_error"])))
    return [10 ** (sum(v) / len(v)) for v in logs.values()]


def test_the_results_index_quotes_the_wellposed_study_from_its_run_files() -> None:
    readme = " ".join((RESULTS / "README.md").read_text(encoding="utf-8").split())
    section = readme.split("## The simulation (SCIS'23 Table B1)", 1)[1].split("## CIFAR-10-head")[
        0
    ]
    counts = _pair_counts(WELLPOSED)
    totals = {
        start: [sum(c[i] for (_, s), c in counts.items() if s == start) for i in range(4)]
        for start in ("teacher", "random")
    }
    teacher, random_start = totals["teacher"], totals["random"]
    assert (
        f"{teacher[1]} of {teacher[0]} pairs of algorithms learned from the teacher "
        f"({teacher[2]} significant by an exact sign-flip test, against {teacher[3]} significant"
    ) in section
    assert (
        f"{random_start[1]} of {random_start[0]} learned from a random start "
        f"({random_start[2]} against {random_start[3]})"
    ) in section
    study = json.loads((WELLPOSED / "study.json").read_text())
    deepest = max(study["grid"]["depths"])
    for start, before in (("random", "errors "), ("teacher", "against ")):
        errors = _geometric_errors(WELLPOSED, deepest, start)
        assert f"{before}{min(errors):.1e}–{max(errors):.1e}" in section, start
    grid, dim = study["grid"], study["setting"]["dim"]
    assert f"at depth {deepest}," in section and f"dimension {dim}," in section
    depths = f"depths {min(grid['depths'])}–{deepest} over {len(grid['seeds'])} seeds"
    assert depths in section and f"the networks of {len(grid['algorithms'])} algorithms" in section
    assert "κ = " + " and ".join(f"{k:g}" for k in grid["kappas"]) in section
    index = (RESULTS / "README.md").read_text(encoding="utf-8")
    assert "| [simulation_wellposed/simulation_wellposed.md](simulation_wellposed/" in index
    assert (
        "`derive simulate --task wellposed --out docs/results/simulation_wellposed --resume`"
        in index
    )
