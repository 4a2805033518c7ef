"""benchmarks/README.md's sections for the systems benchmarks: scale, where a scoring pass's time goes,
clactive against a plain torch loop, the scorer's CPU in a run, round costs, the driver's memory and
the convergence schedules. Each reads its script's JSON under benchmarks/results/ and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

SCALE_COLUMNS = "config | rows | image | round 0 labels | round 1 scored | images/s | score s | update s | overhead s"
SCALE_MEMORY = "read rows s | driver MiB | coordinator MiB | scorer MiB | Train worker MiB | object store peak MiB"
THROUGHPUT_FILES = {  # the scoring_throughput JSONs, and what differed in each
    "scoring_throughput.json": "",
    "scoring_throughput_c10000_workers_not_kept.json": ", task workers killed after 1 s idle "
    "(RAY_idle_worker_killing_time_threshold_ms=1000, Ray's default)",
    "scoring_throughput_c10000.json": ", task workers kept 5 min (clactive's default)",
}
PARTS = ("before first batch", "compute", "waiting for blocks")


def read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _row(cells: list) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def scale_row(name: str, c: dict) -> str:
    rss = c["peak_rss_mib"]
    cells = [f"`{name}`", c["rows"], "x".join(map(str, c["image_shape"])), c["labelled_round_0"], c["candidates"]]
    cells += [f"{c['images_per_s']:.0f}", f"{c['score_s']:.1f}", f"{c['update_s']:.1f}", f"{c['overhead_s']:.1f}"]
    cells += [f"{c['read_rows_s']:.2f}", *(f"{rss[p]:.0f}" for p in ("driver", "coordinator", "scorer", "learner"))]
    return _row(cells + [f"{c['object_store_peak_mib']:.0f}"])


def scale_notes(by: dict, scale: dict) -> list[str]:
    notes = []
    if {"pool-60k-28", "pool-1200k-28"} <= set(by):
        a, b = by["pool-60k-28"], by["pool-1200k-28"]
        ra, rb = a["peak_rss_mib"], b["peak_rss_mib"]
        notes.append(
            f"From {a['rows']} to {b['rows']} rows (1x28x28, least confidence) the driver's peak went from "
            f"{ra['driver']:.0f} to {rb['driver']:.0f} MiB and the coordinator's from {ra['coordinator']:.0f} to "
            f"{rb['coordinator']:.0f} MiB; the scorer's rose by {rb['scorer'] - ra['scorer']:.0f} MiB and the object "
            f"store's peak by {b['object_store_peak_mib'] - a['object_store_peak_mib']:.0f} MiB. Reading an "
            f"update's rows by id took {a['read_rows_s']:.2f} s at {a['rows']} rows and {b['read_rows_s']:.2f} s "
            f"at {b['rows']}; images/s at {b['rows']} over {a['rows']}: {scale['scoring_rate_ratio']:.2f} "
            "(scoring_rate_ratio)."
        )
    if {"labels-30k-64", "labels-600k-64"} <= set(by):
        a, b = by["labels-30k-64"], by["labels-600k-64"]
        notes.append(
            f"With {a['labelled_round_0']} and {b['labelled_round_0']} labels on the {b['rows']}-row 3x64x64 pool "
            f"(round 0 trained for {a['round_0_steps']} and {b['round_0_steps']} steps) the coordinator peaked at "
            f"{a['peak_rss_mib']['coordinator']:.1f} and {b['peak_rss_mib']['coordinator']:.1f} MiB "
            f"(coordinator_rss_ratio {scale['coordinator_rss_ratio']:.3f}), the Train worker at "
            f"{a['peak_rss_mib']['learner']:.0f} and {b['peak_rss_mib']['learner']:.0f} MiB."
        )
    if "cluster_margin_scorer_rss_ratio" in scale and "cluster-margin-1200k-28" in by:
        notes.append(
            f"Cluster-Margin against least confidence on the whole {by['cluster-margin-1200k-28']['rows']}-row pool: "
            f"peak RSS ratios scorer {scale['cluster_margin_scorer_rss_ratio']:.3f}, coordinator "
            f"{scale['cluster_margin_coordinator_rss_ratio']:.3f}."
        )
    return notes


def scale_lines(results: Path) -> list[str]:
    scale = read(results / "scale.json")
    if scale is None:
        return []
    by = scale["by_config"]
    lines = [
        f"`benchmarks/results/scale.json` keeps one entry per configuration, replaced when it is re-run; its "
        f"date and command are its last write's: {scale['date'][:10]}, `{scale['command']}`.",
        "",
        f"| {SCALE_COLUMNS} | {SCALE_MEMORY} |",
        "|---|" + "---:|" * (SCALE_COLUMNS.count("|") + SCALE_MEMORY.count("|") + 1),
        *(scale_row(name, c) for name, c in by.items()),
        "",
    ]
    return lines + [note for text in scale_notes(by, scale) for note in (text, "")][:-1]


def throughput_rows(name: str, data: dict) -> list[str]:
    scope = (
        f"whole unlabelled pool ({data['scored']})"
        if data["candidates"] is None
        else f"{data['candidates']} candidates"
    )
    rows = []
    for r in data["results"]:
        cells = [f"`{name}`", scope + THROUGHPUT_FILES[name], r["batch_size"]]
        cells += [
            f"{r['ray_s']['median']:.2f}",
            f"{r['plain_s']['median']:.2f}",
            f"{r['throughput_ratio']['median']:.3f}",
        ]
        rows.append(_row(cells + [f"{r['ray_pass_parts_s'][p]['median']:.2f}" for p in PARTS]))
    return rows


def throughput_lines(results: Path) -> list[str]:
    found = {name: data for name in THROUGHPUT_FILES if (data := read(results / name)) is not None}
    if not found:
        return []
    models = sorted({data["model"] for data in found.values()})
    dates = sorted({data["date"][:10] for data in found.values()})
    return [
        f"Medians of each JSON's repeats; model {', '.join(models)}; measured {', '.join(dates)}:",
        "",
        "| JSON | pass | batch | Ray s | plain loop s | Ray / plain | before first batch s | compute s | waiting s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *(row for name, data in found.items() for row in throughput_rows(name, data)),
    ]


def plain_loop_lines(results: Path) -> list[str]:
    plain = read(results / "plain_loop.json")
    if plain is None:
        return []
    keys = ("selection_s", "score_s", "score_compute_s", "update_s", "round_0_update_s", "train_s")
    runs = {"plain loop, no Ray": plain["by_run"]["plain"], "clactive": plain["by_run"]["clactive"]}
    lines = [
        f"`{plain['command']}` ({plain['date'][:10]}, `{plain['config']}` with {', '.join(plain['sets'])}):",
        "",
        "| run | selection s | scoring s | of which compute s | update s | round 0 update s "
        "| later rounds' training s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(_row([name] + [f"{run[k]['median']:.1f}" for k in keys]) for name, run in runs.items()),
        "",
    ]
    p, c = (run for run in runs.values())
    same = "the same" if p["proxy_acc"] == c["proxy_acc"] else "different"
    return lines + [
        f"clactive takes {plain['selection_ratio_vs_plain']:.2f}x the plain loop's selection time. Scoring: "
        f"{c['score_s']['median']:.1f} s against {p['score_s']['median']:.1f} s, of which the scorer's compute "
        f"{c['score_compute_s']['median']:.1f} s; the first round's update {c['round_0_update_s']['median']:.1f} s "
        f"against {p['round_0_update_s']['median']:.1f} s; the later rounds' training "
        f"{c['train_s']['median'] / p['train_s']['median']:.2f}x the plain loop's. Both end at {c['labelled']} labels "
        f"with {same} proxy test accuracy ({', '.join(f'{a:.4f}' for a in c['proxy_acc'])} against "
        f"{', '.join(f'{a:.4f}' for a in p['proxy_acc'])})."
    ]


def _load(text: str) -> str:
    if text == "0":
        return "quiet"
    share, period = text.split("@")
    return f"{share} of a core, a burst every {period} ms"


def profile_lines(results: Path) -> list[str]:
    prof = read(results / "scoring_profile.json")
    if prof is None:
        return []
    cpu, seconds = prof["cpu_s_by_process_while_scoring"], prof["scoring_seconds"]
    lines = [
        f"`{prof['command']}` ({prof['date'][:10]}): in the {seconds} s the scorer was scoring, the cores went to:",
        "",
        "| process | cores |",
        "|---|---:|",
        *(_row([name, f"{cpu[name] / seconds:.2f}"]) for name in sorted(cpu, key=lambda n: -cpu[n])),
        "",
        f"Over the run's {prof['images_scored']} scored images the scorer computed {prof['compute_ratio']:.2f}x as "
        f"long as a plain two-thread pass in the same sitting: it had {prof['scorer_cores']:.2f} cores against "
        f"{prof['plain_cores']:.2f}, and spent {prof['scorer_cpu_s_per_1000']:.3f} CPU s per 1,000 images against "
        f"{prof['plain_cpu_s_per_1000']:.3f}. One plain pass over the pool beside a synthetic load (median s):",
        "",
        "| torch threads | load | pass s | each repeat s |",
        "|---:|---|---:|---|",
    ]
    for threads, by_load in prof["plain_pass_s_by_threads_and_load"].items():
        for load, median in by_load.items():
            repeats = prof["plain_pass_s_runs"].get(f"{threads} threads, load {load}", [])
            lines.append(_row([threads, _load(load), f"{median:.1f}", ", ".join(f"{s:.1f}" for s in repeats)]))
    return lines


def round_costs_lines(results: Path) -> list[str]:
    costs = read(results / "round_costs.json")
    if costs is None:
        return []
    lines = [
        f"`{costs['command']}` ({costs['date'][:10]}): rounds of {costs['round_size']} of the pool, "
        f"{costs['update_steps']} update steps each:",
        "",
        "| round | labelled | steps | update s | train s | score s | scoring overhead s | learner overhead s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in costs["per_round"]:
        over = r["overhead_s"]
        cells = [r["round"], r["labelled"], r["steps"], f"{r['update_s']:.1f}", f"{r['train_s']:.1f}"]
        lines.append(_row(cells + [f"{r['score_s']:.1f}", f"{over['scoring']:.2f}", f"{over['learner']:.2f}"]))
    return lines + [
        "",
        f"Update time, last warm round / first warm round: {costs['update_time_ratio_last_first']:.2f}; median of "
        f"the last three / of the first three: {costs['update_time_ratio_last3_first3']:.2f}. Framework overhead "
        "/ round time: "
        f"{100 * costs['overhead_share']:.1f}% over every round, {100 * costs['overhead_share_steady']:.1f}% "
        "without round 0 (the Train worker group's start).",
    ]


def driver_rss_lines(results: Path) -> list[str]:
    rss = read(results / "driver_rss.json")
    if rss is None:
        return []
    lines = [
        f"`{rss['command']}` ({rss['date'][:10]}, medians of {rss['repeats']} repeats):",
        "",
        "| pool | peak RSS MiB | before scoring MiB | growth in the pass MiB | score s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for name, pool in rss["by_pool"].items():
        cells = [
            pool["pool_size"],
            f"{pool['peak_rss_mib']['median']:.1f}",
            f"{pool['rss_before_scoring_mib']['median']:.1f}",
        ]
        lines.append(_row(cells + [f"{rss['growth_in_pass_mib'][name]:.1f}", f"{pool['score_s']['median']:.1f}"]))
    return lines + ["", f"Peak RSS, large pool / small: {rss['driver_rss_ratio']:.3f}."]


def convergence_lines(results: Path) -> list[str]:
    lines = []
    for path in sorted(results.glob("convergence_*.json")):
        conv = json.loads(path.read_text())
        lines += [
            f"`{path.name}` ({conv['date']}): {conv['model']} on {conv['labels']} labels, batch {conv['batch_size']}, "
            f"lr {conv['lr']}; chosen: {conv['chosen_epochs']} epochs, the shortest within {conv['tolerance_pt']} pt "
            f"of the best mean ({conv['best_mean_acc']:.4f}).",
            "",
            "| epochs | seeds | mean acc | min | max |",
            "|---:|---:|---:|---:|---:|",
            *(
                _row([e["epochs"], e["seeds"], f"{e['mean_acc']:.4f}", f"{e['min_acc']:.4f}", f"{e['max_acc']:.4f}"])
                for e in conv["by_epochs"]
            ),
            "",
        ]
    return lines[:-1]


def sections(results: Path) -> dict[str, list[str]]:
    return {
        "scale": scale_lines(results),
        "scoring_pass": throughput_lines(results),
        "plain_loop": plain_loop_lines(results),
        "scoring_profile": profile_lines(results),
        "round_costs": round_costs_lines(results),
        "driver_rss": driver_rss_lines(results),
        "convergence": convergence_lines(results),
    }
