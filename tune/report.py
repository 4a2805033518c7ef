"""The search's report: every trial, the accuracy/time Pareto front, the chosen config. No Ray here.

A trial is {"trial", "params", "status", "rounds", "accuracy", "test_accuracy", "selection_s"}: its
parameters, whether it finished or was stopped early, and the last values it reported. `accuracy`
is the objective, a validation accuracy; `test_accuracy` only reports. Only finished trials compete:
a trial ASHA stopped never reached the final budget.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

from pipeline.errors import ConfigError
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


def choose(trials: list[dict], within_pt: float, reference: float | None = None) -> dict | None:
    """The fastest finished trial whose (validation) accuracy is within `within_pt` points of
    `reference` (full's, when the search ran it), else of the best trial's; None when none is."""
    front = pareto_front(trials)
    if not front:
        return None
    bar = (max(t["accuracy"] for t in front) if reference is None else reference) - within_pt / 100
    near = [t for t in front if t["accuracy"] >= bar]
    return min(near, key=lambda t: t["selection_s"]) if near else None


def chosen_params(out_dir: Path) -> dict:
    """The settings a finished search chose (its trials.json), for `clactive compare`'s tuned entry."""
    path = out_dir / "trials.json"
    if not path.is_file():
        raise ConfigError(f"compare.tuned: {path} does not exist: run clactive tune with tune.dir {out_dir} first")
    search = json.loads(path.read_text())
    chosen = next((t for t in search["trials"] if t["trial"] == search.get("chosen")), None)
    if chosen is None:
        raise ConfigError(
            f"compare.tuned: the search in {out_dir} chose no trial (see its trials.md): widen tune.space or "
            "raise tune.num_samples, and run it again"
        )
    return chosen["params"]


def table(trials: list[dict], objective: str) -> str:
    keys = sorted({k for t in trials for k in t["params"]})
    front = {t["trial"] for t in pareto_front(trials)}
    lines = [
        "| trial | "
        + " | ".join(keys)
        + f" | status | rounds | {objective} | test acc (reported) | selection s | Pareto |",
        "|---|" + "---|" * len(keys) + "---|---:|---:|---:|---:|---|",
    ]
    for t in sorted(trials, key=lambda t: t["trial"]):
        values = " | ".join(_fmt(t["params"].get(k)) for k in keys)
        accs = " | ".join("n/a" if v is None else f"{v:.4f}" for v in (t["accuracy"], t.get("test_accuracy")))
        lines.append(
            f"| {t['trial']} | {values} | {t['status']} | {t['rounds']} | {accs} | {t['selection_s']:.1f} | "
            f"{'yes' if t['trial'] in front else ''} |"
        )
    return "\n".join(lines) + "\n"


def best_config_yaml(base_raw: dict, chosen: dict) -> str:
    """The base config with the chosen parameters: a file `clactive run --config` accepts."""
    config = apply(base_raw, chosen["params"])
    raw = copy.deepcopy(config.to_dict())
    raw.pop("run_dir", None)  # a new run picks its own directory
    header = (
        f"# chosen by clactive tune: trial {chosen['trial']}, validation accuracy {chosen['accuracy']:.4f}, "
        f"selection {chosen['selection_s']:.1f} s\n"
    )
    return header + yaml.safe_dump(raw, sort_keys=False)


def write(
    trials: list[dict], base_raw: dict, out_dir: Path, objective: str, within_pt: float, meta: dict
) -> list[Path]:
    """trials.md, trials.json, pareto.png and (when a trial was chosen) best.yaml in `out_dir`.
    `meta["reference"]`: full's run when the search ran one (its val_acc is the bar), else None."""
    out_dir.mkdir(parents=True, exist_ok=True)
    reference = meta.get("reference")
    chosen = choose(trials, within_pt, reference and reference["val_acc"])
    paths = [out_dir / "trials.md", out_dir / "trials.json", out_dir / "pareto.png"]
    paths[0].write_text(table(trials, objective) + _verdict(chosen, reference, within_pt))
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


def _verdict(chosen: dict | None, reference: dict | None, within_pt: float) -> str:
    """The line under the trial table that says what was chosen, against what."""
    bar = "the best trial" if reference is None else f"full's {reference['val_acc']:.4f}"
    if chosen is None:
        return f"\nno finished trial came within {within_pt:g} pt of {bar}'s validation accuracy: nothing chosen\n"
    return (
        f"\nchosen: trial {chosen['trial']}, the fastest within {within_pt:g} pt of {bar}: validation "
        f"{chosen['accuracy']:.4f}, {chosen['selection_s']:.1f} s of selection\n"
    )


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
