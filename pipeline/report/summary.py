"""The compare report: what each strategy's rounds cost, what its selection is worth, and the ratios.

Pure functions over round records and target fits (no Ray, no torch), so every figure in the
report can be recomputed from the run directories.

Definitions (per round, from its record):
  update s     the learner call minus its evaluation (test and validation splits, a from-scratch
               fit's per-epoch validation included) and minus the construction of
               the learner handle: what a model update costs the selection. Round 0's update
               also carries the Ray Train worker group's start-up (seconds; the record's
               `learner_overhead`), the same one-time cost for every strategy
  selection s  scoring + selecting + update s
Cumulative figures at a budget sum rounds 0..k, where round k is the one whose labelled total
is the budget. A speed-up is a ratio of two cumulative figures from the same compare.
With a class-incremental pool the records also carry the selection model's accuracy on the
classes seen so far and its forgetting (pipeline.data.growth), and target fits their accuracy on
the classes seen by then.
"""

from __future__ import annotations

import json
from pathlib import Path


def round_costs(record: dict) -> dict[str, float]:
    s = record["seconds"]
    update = s["update"] - s["eval"] - s.get("learner_launch", 0.0)
    return {
        "score_s": s["score"],
        "select_s": s["select"],
        "update_s": update,
        "selection_s": s["score"] + s["select"] + update,
    }


def target_at(records: list[dict], targets: dict[int, dict], k: int) -> dict | None:
    """The target fit on the labels of rounds 0..k. A strategy whose selection model *is* the
    target trained from scratch on all labels (`full`) made that fit in round k itself."""
    if k in targets:
        fit, source = targets[k], {"target_acc": "target_acc", "target_val_acc": "target_val_acc"}
        how = "separate"
    elif records[k]["selection_model"] == "target" and not records[k]["warm_start"]:
        fit, source = records[k], {"target_acc": "selection_acc", "target_val_acc": "selection_val_acc"}
        how = "the strategy's own round-k model"
    else:
        return None
    return {
        **{key: fit.get(name) for key, name in source.items()},
        "fit": how,
        **({"val_acc_per_epoch": fit["val_acc_per_epoch"]} if "val_acc_per_epoch" in fit else {}),
        **({"target_acc_seen": fit["acc_seen"]} if "acc_seen" in fit else {}),
    }


TUNED = "tuned"  # the compare entry that runs clactive with the settings a Tune search chose

# A target fit whose last fifth of epochs still gained more than this (validation accuracy) had not converged
UNCONVERGED_GAIN = 0.005


def late_gain(curve: list[float]) -> float | None:
    """Validation accuracy gained over the last fifth of a fit's epochs (at least one); None: under 2 epochs."""
    if len(curve) < 2:
        return None
    last = max(1, round(len(curve) / 5))
    return curve[-1] - curve[-1 - last]


def unconverged(summary: dict) -> list[dict]:
    """The target fits at the budgets whose validation accuracy still rose by more than UNCONVERGED_GAIN
    over their last fifth of epochs: a comparison resting on them rests on an unfinished schedule."""
    out = []
    for name, strategy in summary["strategies"].items():
        for label, at in strategy["at"].items():
            gain = late_gain(at.get("val_acc_per_epoch") or [])
            if gain is not None and gain > UNCONVERGED_GAIN:
                out.append({"strategy": name, "budget": label, "epochs": len(at["val_acc_per_epoch"]), "gain": gain})
    return out


def warning_lines(summary: dict) -> list[str]:
    return [
        f"warning: {w['strategy']}'s target at {w['budget']} gained {100 * w['gain']:.1f} pt of validation accuracy "
        f"over its last fifth of target.epochs = {w['epochs']}: it had not converged; find a schedule that does "
        "with benchmarks/convergence.py"
        for w in summary.get("unconverged", [])
    ]


def summarize(entries: dict[str, dict], budgets: dict[str, int], pool_size: int) -> dict:
    """entries: name -> {"records": [...], "targets": {round: fit}}; budgets: label -> round index."""
    strategies = {}
    for name, entry in entries.items():
        per_round, cum_selection, cum_update = [], 0.0, 0.0
        for record in entry["records"]:
            costs = round_costs(record)
            cum_selection += costs["selection_s"]
            cum_update += costs["update_s"]
            per_round.append(
                {
                    "round": record["round"],
                    "labelled": record["labelled"],
                    "selection_acc": record["selection_acc"],
                    **costs,
                    "cum_selection_s": cum_selection,
                    "cum_update_s": cum_update,
                    **{key: record[key] for key in ("acc_seen", "forgetting") if key in record},
                }
            )
        at = {}
        for label, k in budgets.items():
            if k < len(per_round):
                row = per_round[k]
                target = target_at(entry["records"], entry["targets"], k) or {
                    "target_acc": None,
                    "target_val_acc": None,
                    "fit": None,
                }
                at[label] = {
                    "round": k,
                    "labelled": row["labelled"],
                    "fraction": row["labelled"] / pool_size,
                    "selection_s": row["cum_selection_s"],
                    "update_s": row["cum_update_s"],
                    "score_s": sum(r["score_s"] for r in per_round[: k + 1]),
                    **target,
                }
        strategies[name] = {"per_round": per_round, "at": at}
    summary = {"strategies": strategies, "budgets": budgets, "speedups": speedups(strategies, budgets)}
    if TUNED in strategies:
        summary["speedups_tuned"] = speedups(strategies, budgets, TUNED)
    summary["unconverged"] = unconverged(summary)
    return summary


def speedups(strategies: dict[str, dict], budgets: dict[str, int], entry: str = "clactive") -> dict:
    """`entry` (clactive, or its Tune-chosen settings: tuned) against full and svp at each budget,
    where all are present."""
    out = {}
    ours = strategies.get(entry, {}).get("at", {})
    for label in budgets:
        if label not in ours:
            continue
        figures = {}
        for other in ("full", "svp"):
            theirs = strategies.get(other, {}).get("at", {}).get(label)
            if theirs:
                figures[f"selection_vs_{other}"] = theirs["selection_s"] / ours[label]["selection_s"]
                figures[f"update_vs_{other}"] = theirs["update_s"] / ours[label]["update_s"]
        if figures:
            # svp and clactive score the same pool with the same proxy: this share bounds their ratio
            figures["clactive_scoring_share"] = ours[label]["score_s"] / ours[label]["selection_s"]
            figures["target_acc_minus_full"] = _difference(
                ours[label], strategies.get("full", {}).get("at", {}).get(label)
            )
        out[label] = figures
    return out


def _difference(ours: dict, theirs: dict | None) -> float | None:
    if not theirs or ours["target_acc"] is None or theirs["target_acc"] is None:
        return None
    return ours["target_acc"] - theirs["target_acc"]


def table(summary: dict) -> str:
    """Markdown: strategy x budget (when a target was fitted), each strategy's last round, then the
    speed-ups and the warnings."""
    strategies = summary["strategies"]
    lines = _fits_table(strategies)
    lines += [
        "| strategy | last round | labelled | selection model test acc | cumulative selection s | "
        "cumulative update s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, strategy in strategies.items():
        if strategy["per_round"]:
            row = strategy["per_round"][-1]
            lines.append(
                f"| {name} | {row['round']} | {row['labelled']} | {row['selection_acc']:.4f} | "
                f"{row['cum_selection_s']:.1f} | {row['cum_update_s']:.1f} |"
            )
    seen = {
        name: s["per_round"][-1]
        for name, s in strategies.items()
        if s["per_round"] and "acc_seen" in s["per_round"][-1]
    }
    if seen:
        lines += [
            "",
            "| strategy | last round | selection model acc on seen classes | forgetting |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {name} | {row['round']} | {row['acc_seen']:.4f} | {row['forgetting']:.4f} |"
            for name, row in seen.items()
        ]
    lines += _speedup_lines(summary)
    warnings = warning_lines(summary)
    if warnings:
        lines += ["", *warnings]
    return "\n".join(lines) + "\n"


def _fits_table(strategies: dict) -> list[str]:
    """Strategy x budget, with the target's validation accuracy (what choices read) beside its test
    accuracy (what reports) where the data has a validation split; [] when no target was fitted."""
    fits = [(name, label, at) for name, s in strategies.items() for label, at in s["at"].items()]
    if not fits:
        return []
    validated = any(at.get("target_val_acc") is not None for _, _, at in fits)
    lines = [
        "| strategy | budget | labelled | target acc |"
        + (" target val acc |" if validated else "")
        + " cumulative selection s | cumulative update s |",
        "|---|---|---:|---:|" + ("---:|" if validated else "") + "---:|---:|",
    ]
    for name, label, at in fits:
        accs = [_acc(at["target_acc"])] + ([_acc(at.get("target_val_acc"))] if validated else [])
        lines.append(
            f"| {name} | {label} | {at['labelled']} | {' | '.join(accs)} | {at['selection_s']:.1f} | "
            f"{at['update_s']:.1f} |"
        )
    return lines + [""]


def _speedup_lines(summary: dict) -> list[str]:
    labelled = list(summary["speedups"].items())
    labelled += [(f"{label} ({TUNED})", figures) for label, figures in summary.get("speedups_tuned", {}).items()]
    lines = []
    for label, figures in labelled:
        parts = [
            f"{key.replace('_', ' ')} {value:.2f}" + ("x" if key.startswith(("selection", "update")) else "")
            for key, value in figures.items()
            if value is not None
        ]
        if parts:  # a budget no strategy pair has figures at gets no line
            lines += ["", f"at {label}: " + "; ".join(parts)]
    return lines


def _acc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def write(summary: dict, out_dir: Path, meta: dict) -> list[Path]:
    """results.json, table.md and the PNG plots in `out_dir`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps({**meta, **summary}, indent=1) + "\n")
    (out_dir / "table.md").write_text(table(summary))
    return [out_dir / "results.json", out_dir / "table.md", *plot(summary, out_dir)]


def plot(summary: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fitted = {
        name: [
            (at["fraction"] * 100, at["target_acc"]) for at in strategy["at"].values() if at["target_acc"] is not None
        ]
        for name, strategy in summary["strategies"].items()
    }
    if any(fitted.values()):  # a proxy-only compare (budgets: null) fits no target
        figure, axes = plt.subplots(figsize=(6, 4))
        for name, points in fitted.items():
            if points:
                axes.plot(*zip(*points), marker="o", label=name)
        axes.set(xlabel="labelled (% of pool)", ylabel="target test accuracy", title="Target accuracy vs labels")
        paths.append(_save(figure, axes, out_dir / "target_accuracy.png"))

    curves = [
        ("cum_selection_s", "cumulative selection s (log)", "Selection time so far", True, "selection_time.png"),
        ("update_s", "update s", "Model update per round", False, "update_per_round.png"),
    ]
    if any("acc_seen" in row for s in summary["strategies"].values() for row in s["per_round"]):
        curves += [
            (
                "acc_seen",
                "test accuracy on classes seen so far",
                "Selection model, class-incremental",
                False,
                "acc_seen.png",
            ),
            ("forgetting", "forgetting (mean drop from best)", "Forgetting", False, "forgetting.png"),
        ]
    for key, ylabel, title, log, filename in curves:
        figure, axes = plt.subplots(figsize=(6, 4))
        for name, strategy in summary["strategies"].items():
            rows = [row for row in strategy["per_round"] if key in row]
            axes.plot(
                [r["round"] for r in rows], [max(r[key], 1e-3) if log else r[key] for r in rows], marker=".", label=name
            )
        if log:
            axes.set_yscale("log")
        axes.set(xlabel="round", ylabel=ylabel, title=title)
        paths.append(_save(figure, axes, out_dir / filename))
    return paths


def _save(figure, axes, path: Path) -> Path:
    import matplotlib.pyplot as plt

    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
