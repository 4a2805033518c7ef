"""The README's generated sections (benchmarks/figures.py calls these): a kept run's round table,
and the Results. Every figure here comes from a JSON file or table under benchmarks/results/."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from pipeline.report.round_table import RoundTable

SAMPLE_RUN = Path("seeds") / "whole-s0" / "clactive.json"  # under results/: a kept clactive run's records


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin (benchmarks/figures.py writes this section) -->", f"<!-- {name}:end -->"


def fill(text: str, name: str, lines: list[str]) -> str:
    """`text` with the section between `name`'s markers replaced by `lines` (a blank line each side)."""
    begin, end = markers(name)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"the text has no single pair of markers {begin} ... {end}: put them where the section goes")
    head, rest = text.split(begin)
    return head + "\n".join([begin, "", *lines, "", end]) + rest.split(end, 1)[1]


def read_text(path: Path) -> str | None:
    return path.read_text().rstrip() if path.is_file() else None


def fmt_value(measured: float | None, target: str) -> str:
    if measured is None:
        return "n/a"
    if target.endswith("%"):  # a share, shown as its target is
        return f"{100 * measured:.1f}%"
    return f"{measured:.3g}"


def target_table(targets: list[dict]) -> list[str]:
    lines = ["| figure | target | measured | verdict |", "|---|---|---:|---|"]
    return lines + [
        f"| {t['figure']} | {t['target']} | {fmt_value(t['measured'], t['target'])} | {t['verdict']} |" for t in targets
    ]


def sample_lines(results: Path) -> list[str]:
    """What a run prints, from a kept run's own records: its round table and target lines."""
    run = json.loads((results / SAMPLE_RUN).read_text())
    printed: list[str] = []
    table = RoundTable(printed.append)
    for record in run["records"]:
        table.row(record)
    for _, fit in sorted(run["targets"].items(), key=lambda item: int(item[0])):
        table.target(fit)
    note = (
        f"(Printed by `pipeline/report/round_table.py` from `benchmarks/results/{SAMPLE_RUN.as_posix()}`: "
        f"{run['strategy']} in `clactive compare --config configs/fashion_mnist_compare.yaml`, seed {run['seed']}, "
        f"{run['date'][:10]}, {run['machine'].split(', Linux')[0]}.)"
    )
    return ["```", *printed, "```", "", *textwrap.wrap(note, width=100, break_on_hyphens=False)]


def compare_lines(results: Path) -> list[str]:
    compare = json.loads((results / "compare" / "results.json").read_text())
    table = read_text(results / "compare" / "table.md")
    if table is None:
        return []
    labelled = [row["labelled"] for row in next(iter(compare["strategies"].values()))["per_round"]]
    return [
        f"The one-seed compare (`{compare['command']}`, {compare['date'][:10]}): {compare['dataset']}, "
        f"a pool of {compare['pool_size']}, labelled after each round {', '.join(map(str, labelled))}; "
        f"the target trained from scratch on each strategy's labels at {', '.join(compare['budgets'])}:",
        "",
        table,
        "",
        "![target accuracy](benchmarks/results/compare/target_accuracy.png)",
        "![selection time](benchmarks/results/compare/selection_time.png)",
        "![update per round](benchmarks/results/compare/update_per_round.png)",
        "",
    ]


def horizon_lines(horizon: dict | None) -> list[str]:
    if not horizon:
        return []
    acc = horizon["proxy_acc_last_round"]
    return [
        f"Long horizon (`configs/fashion_mnist_long.yaml`: {horizon['labelled_initial']} initial labels, then "
        f"{horizon['rounds_after_initial']} rounds of {horizon['round_size']}; svp vs clactive, proxy only): at the "
        f"last round ({horizon['labelled_at_last_round']} labels) clactive's cumulative update time is "
        f"{horizon['update_speedup']:.2f}x shorter and its selection time {horizon['selection_speedup']:.2f}x; "
        f"proxy test accuracy svp {acc['svp']:.4f}, clactive {acc['clactive']:.4f} "
        f"({100 * horizon['proxy_acc_clactive_minus_svp']:+.2f} pt).",
        "",
        "![long horizon update per round](benchmarks/results/long_horizon/update_per_round.png)",
        "![long horizon selection time](benchmarks/results/long_horizon/selection_time.png)",
        "",
    ]


def seeds_note(summary: dict) -> list[str]:
    if not summary.get("seeds"):
        return []
    seeds = ", ".join(map(str, summary["seeds"]))
    return [
        f"Where `benchmarks/seeds.py` measured a figure over several seeds (whole pool: seeds {seeds}), the "
        "targets below judge its mean; the per-seed table is in [benchmarks/README.md](benchmarks/README.md).",
        "",
    ]


def incremental_lines(incremental: dict | None, results: Path) -> list[str]:
    table = read_text(results / "class_incremental" / "table.md")
    if not incremental or table is None:
        return []
    return [
        "",
        f"Class-incremental (`{incremental['command']}`, {incremental['date']}): classes arrive a few at a "
        "time, and the target is fitted at the last round, on every class:",
        "",
        table,
        "",
        "![accuracy on seen classes](benchmarks/results/class_incremental/acc_seen.png)",
        "![forgetting](benchmarks/results/class_incremental/forgetting.png)",
        "",
        *target_table(incremental["targets"]),
        *incremental_seed_lines(read_json(results / "class_incremental_seeds.json")),
    ]


STRATEGY_ORDER = ("full", "svp", "clactive", "finetune")


def incremental_seed_lines(seeded: dict | None) -> list[str]:
    """benchmarks/class_incremental_seeds.py's mean ± std over seeds, and each strategy's labels per
    class with its target's per-class accuracy (means over the seeds)."""
    if not seeded or not seeded["seeds_done"]:
        return []
    figures, seeds = seeded["figures"], seeded["seeds_done"]

    def pm(key: str) -> str:
        value = figures.get(key, {})
        if value.get("mean") is None:
            return "n/a"
        return f"{value['mean']:.4f}" + ("" if value.get("std") is None else f" ± {value['std']:.4f}")

    names = [n for n in STRATEGY_ORDER if f"target_acc_{n}" in figures]
    per_seed = [seeded["classes"][str(seed)] for seed in seeds]
    width = len(per_seed[0][names[0]]["labels_per_class"])
    accuracy = ", ".join(f"{n} {pm('target_acc_' + n)}" for n in names)
    forgetting = ", ".join(f"{n} {pm('forgetting_' + n)}" for n in names)
    paragraph = (
        f"Over seeds {', '.join(map(str, seeds))} (`python -m benchmarks.class_incremental_seeds`), mean ± std: "
        f"the target's accuracy at {seeded['budget']} {accuracy}; the selection model's forgetting {forgetting}; "
        f"forgetting of clactive / finetune {pm('forgetting_clactive_over_finetune')}; full's labels with the "
        f"target fitted again as every other strategy's is (`refit`) {pm('target_acc_full_refit')}. Labels per "
        "class at the last round, with the target's per-class test accuracy in brackets (means over the seeds):"
    )
    lines = ["", paragraph, "", "| strategy | " + " | ".join(f"class {c}" for c in range(width)) + " |"]
    lines.append("|---|" + "---:|" * width)
    for name in names:
        cells = [
            f"{_mean([c[name]['labels_per_class'][k] for c in per_seed]):.0f} "
            f"({_mean([c[name]['target_per_class_acc'][k] for c in per_seed]):.2f})"
            for k in range(width)
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def tune_summary(search: dict) -> str:
    trials = search["trials"]
    status = {s: sum(t["status"] == s for t in trials) for s in ("finished", "stopped", "error")}
    total_s = sum(t["selection_s"] for t in trials)
    return (
        f"Search of the memory and step budget (`{search['command']}`, {search['date'][:10]}): "
        f"{len(trials)} trials of {search['rounds']} rounds on {search['dataset']}: {status['finished']} finished, "
        f"{status['stopped']} stopped early by ASHA, {status['error']} failed; "
        f"{total_s / 60:.0f} min of selection time over all trials. Objective "
        f"{search['objective']} at the last round against cumulative selection seconds."
    )


def tune_choice(search: dict, best_yaml: str) -> list[str]:
    chosen = {t["trial"]: t for t in search["trials"]}.get(search.get("chosen"))
    if not chosen:
        return []
    params = ", ".join(
        f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in sorted(chosen["params"].items())
    )
    reference = search.get("reference")
    bar = "the best" if not reference else f"full's validation accuracy {reference['val_acc']:.4f}"
    # objectives named before validation splits read test accuracy
    on_test = search["objective"] in ("proxy_acc", "target_acc")
    return [
        f"Chosen (the fastest finished trial within {search['choose_within_pt']:g} pt of {bar}): "
        f"{chosen['trial']}, {params}; {search['objective']} {chosen['accuracy']:.4f} in "
        f"{chosen['selection_s']:.1f} s. As a config: `{best_yaml}`."
        + (
            " This search predates validation splits: it chose on test accuracy, and is not re-run yet."
            if on_test
            else ""
        )
    ]


def tune_lines(search: dict | None, results: Path) -> list[str]:
    if not search or not (results / "tune" / "trials.md").is_file():
        return []
    return [
        "",
        tune_summary(search) + " Every trial: [benchmarks/README.md](benchmarks/README.md).",
        "",
        "![accuracy vs selection time](benchmarks/results/tune/pareto.png)",
        "",
        *tune_choice(search, "benchmarks/results/tune/best.yaml"),
    ]


def results_lines(summary: dict, incremental: dict | None, search: dict | None, results: Path) -> list[str]:
    lines = [
        f"Gathered by `python -m benchmarks.figures` from these measurements (newest {summary['date']}); "
        "the machine of each, and every benchmark's own tables, are in [benchmarks/README.md](benchmarks/README.md):",
        "",
        "```",
        *(f"{m['command']}    # {m['date']}" for m in summary.get("measured", [])),
        "```",
        "",
    ]
    if (results / "compare" / "results.json").is_file():
        lines += compare_lines(results)
    lines += horizon_lines(summary.get("long_horizon")) + seeds_note(summary) + target_table(summary["targets"])
    return lines + incremental_lines(incremental, results) + tune_lines(search, results)


def fill_readme(text: str, summary: dict, incremental: dict | None, search: dict | None, results: Path) -> str:
    text = fill(text, "sample", sample_lines(results))
    return fill(text, "results", results_lines(summary, incremental, search, results))
