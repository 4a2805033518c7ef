"""The search's report: every trial, the accuracy/time Pareto front, the chosen config. No Ray here.

A trial is {"trial", "params", "status", "rounds", "accuracy", "selection_s"}: its parameters,
whether it finished or was stopped early, and the last values it reported. Only finished trials
compete: a trial ASHA stopped never reached the final budget.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

from tune.space import apply


def pareto_front(trials: list[dict]) -> list[dict]:
    """Finished trials no other finished trial beats on both accuracy (higher) and time (lower)."""
    done = [t for t in trials if t["status"] == "finished" and t["accuracy"] is not None]

    def dominated(t):
        return any(
            o["accuracy"] >= t["accuracy"]
            and o["selection_s"] <= t["selection_s"]
            and (o["accuracy"], o["selection_s"]) != (t["accuracy"], t["selection_s"])
            for o in done
        )

    return sorted((t for t in done if not dominated(t)), key=lambda t: t["selection_s"])


def choose(trials: list[dict], within_pt: float) -> dict | None:
    """The fastest finished trial whose accuracy is within `within_pt` points of the best."""
    front = pareto_front(trials)
    if not front:
        return None
    best = max(t["accuracy"] for t in front)
    return min((t for t in front if t["accuracy"] >= best - within_pt / 100), key=lambda t: t["selection_s"])


def table(trials: list[dict], objective: str) -> str:
    keys = sorted({k for t in trials for k in t["params"]})
    front = {t["trial"] for t in pareto_front(trials)}
    lines = [
        "| trial | " + " | ".join(keys) + f" | status | rounds | {objective} | selection s | Pareto |",
        "|---|" + "---|" * len(keys) + "---|---:|---:|---:|---|",
    ]
    for t in sorted(trials, key=lambda t: t["trial"]):
        values = " | ".join(_fmt(t["params"].get(k)) for k in keys)
        acc = "n/a" if t["accuracy"] is None else f"{t['accuracy']:.4f}"
        lines.append(
            f"| {t['trial']} | {values} | {t['status']} | {t['rounds']} | {acc} | {t['selection_s']:.1f} | "
            f"{'yes' if t['trial'] in front else ''} |"
        )
    return "\n".join(lines) + "\n"


def best_config_yaml(base_raw: dict, chosen: dict) -> str:
    """The base config with the chosen parameters: a file `clactive run --config` accepts."""
    config = apply(base_raw, chosen["params"])
    raw = copy.deepcopy(config.to_dict())
    raw.pop("run_dir", None)  # a new run picks its own directory
    header = (
        f"# chosen by clactive tune: trial {chosen['trial']}, accuracy {chosen['accuracy']:.4f}, "
        f"selection {chosen['selection_s']:.1f} s\n"
    )
    return header + yaml.safe_dump(raw, sort_keys=False)


def write(
    trials: list[dict], base_raw: dict, out_dir: Path, objective: str, within_pt: float, meta: dict
) -> list[Path]:
    """trials.md, trials.json, pareto.png and (when a trial finished) best.yaml in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = choose(trials, within_pt)
    paths = [out_dir / "trials.md", out_dir / "trials.json", out_dir / "pareto.png"]
    paths[0].write_text(table(trials, objective))
    paths[1].write_text(
        json.dumps(
            {
                **meta,
                "objective": objective,
                "choose_within_pt": within_pt,
                "trials": trials,
                "pareto": [t["trial"] for t in pareto_front(trials)],
                "chosen": chosen and chosen["trial"],
            },
            indent=1,
        )
        + "\n"
    )
    plot(trials, objective, chosen, paths[2])
    if chosen is not None:
        paths.append(out_dir / "best.yaml")
        paths[-1].write_text(best_config_yaml(base_raw, chosen))
    return paths


def plot(trials: list[dict], objective: str, chosen: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    done = [t for t in trials if t["status"] == "finished" and t["accuracy"] is not None]
    stopped = [t for t in trials if t not in done and t["accuracy"] is not None]
    axes.scatter([t["selection_s"] for t in done], [t["accuracy"] for t in done], label="finished")
    if stopped:
        axes.scatter(
            [t["selection_s"] for t in stopped],
            [t["accuracy"] for t in stopped],
            marker="x",
            label="stopped early (last round reached)",
        )
    front = pareto_front(trials)
    if front:
        axes.plot([t["selection_s"] for t in front], [t["accuracy"] for t in front], "r-", label="Pareto front")
    if chosen:
        axes.scatter(
            [chosen["selection_s"]], [chosen["accuracy"]], s=150, facecolors="none", edgecolors="k", label="chosen"
        )
    axes.set(xlabel="total selection s", ylabel=objective, title="Accuracy vs selection time per trial")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
