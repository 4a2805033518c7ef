r"""Epochs vs validation accuracy of a model trained from scratch: the evidence for a fair baseline schedule.

`full` retrains the target and `svp` the proxy from scratch every round; each must run the
shortest schedule that converges and no longer. This trains `--model` on a random labelled
subset of the prepared Fashion-MNIST pool for each epoch count (one-cycle schedule, as the
pipeline does) and each seed in `--seeds` (the seed draws the subset and initialises the model),
and picks the shortest schedule whose mean validation accuracy over its seeds is within `--tolerance`
points of the best mean, among the epoch counts run with the most seeds: one lucky seed must not
lengthen (or shorten) a baseline. The validation split is `--validation` examples held out of the
pool (data.validation, never in a labelled subset); test accuracy is measured and reported beside
it, never chosen on. The JSON is rewritten after every
point, and a re-run with the same model and labels skips the (epochs, seed) points it holds.

    .venv/bin/python -m benchmarks.convergence --config configs/fashion_mnist_compare.yaml \
        --model preact_resnet20 --labels 12000 --epochs 2,4,6,8,12,16 --seeds 0,1,2

Curves written before validation splits (convergence_<model>.json, test accuracy) are kept as
they were; these go to convergence_<model>_validation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import torch

from pipeline.compare import load
from pipeline.data import images_from_arrow, prepare_dataset, resolve_augment, source_for
from pipeline.update.models import create_model
from pipeline.update.strategies import steps_for_epochs
from pipeline.update.training import make_optimizer, predict, torch_threads, train_steps

RESULTS = Path(__file__).parent / "results"


def load_split(split_dir: str, shape) -> tuple[torch.Tensor, torch.Tensor]:
    table = pads.dataset(split_dir, format="parquet").to_table(columns=["image", "label"])
    return (
        torch.from_numpy(images_from_arrow(table.column("image"), shape).copy()),
        torch.from_numpy(table.column("label").to_numpy().copy()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/fashion_mnist_compare.yaml")
    parser.add_argument(
        "--model",
        default="preact_resnet20",
        help="a model name; its role's settings come from "
        "the config's target section if it names this model, else its proxy section",
    )
    parser.add_argument("--labels", type=int, default=12000, help="size of the random labelled subset")
    parser.add_argument("--epochs", default="2,4,6,8,12,16")
    parser.add_argument("--tolerance", type=float, default=0.3, help="points of accuracy")
    parser.add_argument("--seeds", default="0", help="comma-separated; each epoch count runs once per seed")
    parser.add_argument(
        "--validation", type=int, default=5000, help="examples held out of the pool to choose on (data.validation)"
    )
    parser.add_argument(
        "--out", help="results file name in benchmarks/results (default convergence_<model>_validation.json)"
    )
    args = parser.parse_args()

    config, _ = load(args.config, [], quick=False, data_dir=None)  # a compare config or a run config
    settings = config.target if config.target.name == args.model else config.proxy
    held_out = replace(config.data, validation=args.validation)
    data = prepare_dataset(source_for(held_out), held_out.cache_dir, held_out.shard_rows)
    pool_x, pool_y = load_split(data.split_dir("pool"), data.image_shape)
    val_x, val_y = load_split(data.split_dir("validation"), data.image_shape)
    test_x, test_y = load_split(data.split_dir("test"), data.image_shape)
    torch.set_num_threads(torch_threads(1))

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / (args.out or f"convergence_{args.model}_validation.json")
    previous = json.loads(out.read_text()) if out.is_file() else {}
    for point in previous.get("curve", []):
        point.setdefault("seed", previous.get("seed", 0))  # curves written before --seeds: one seed
    same = {k: previous.get(k) for k in ("model", "labels", "batch_size", "lr", "validation")} == {
        "model": args.model,
        "labels": args.labels,
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        "validation": args.validation,
    }
    curve = previous.get("curve", []) if same else []
    command = "python -m benchmarks.convergence " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items() if v is not None
    )
    commands = [c for c in (previous.get("commands", []) if same else []) if c != command] + [command]
    print(f"{args.model} from scratch on {args.labels} labels, batch {settings.batch_size}, peak lr {settings.lr}")
    print(f"{'epochs':>6}  {'seed':>4}  {'steps':>6}  {'val acc':>8}  {'test acc':>8}  {'train s':>8}", flush=True)
    for seed in [int(v) for v in args.seeds.split(",")]:
        rows = torch.from_numpy(np.random.default_rng(seed).choice(len(pool_y), args.labels, replace=False))
        x, y = pool_x[rows], pool_y[rows]
        for epochs in [int(e) for e in args.epochs.split(",")]:
            if any(point["epochs"] == epochs and point["seed"] == seed for point in curve):
                continue
            torch.manual_seed(seed)
            model = create_model(args.model, data.image_shape[0], data.num_classes)
            steps = steps_for_epochs(args.labels, epochs, settings.batch_size)
            start = time.perf_counter()
            train_steps(
                model,
                make_optimizer(model, settings, lr=settings.lr),
                x,
                y,
                steps=steps,
                batch_size=settings.batch_size,
                lr=settings.lr,
                mean=data.mean,
                std=data.std,
                generator=torch.Generator().manual_seed(seed),
                device=torch.device("cpu"),
                augment=resolve_augment(config.data),
            )
            seconds = time.perf_counter() - start
            val_acc, test_acc = (accuracy(model, x_, y_, data) for x_, y_ in ((val_x, val_y), (test_x, test_y)))
            curve.append(
                {
                    "epochs": epochs,
                    "seed": seed,
                    "steps": steps,
                    "val_acc": val_acc,
                    "test_acc": test_acc,
                    "train_s": seconds,
                }
            )
            curve.sort(key=lambda point: (point["epochs"], point["seed"]))
            print(f"{epochs:>6}  {seed:>4}  {steps:>6}  {val_acc:>8.4f}  {test_acc:>8.4f}  {seconds:>8.1f}", flush=True)
            write(
                out, args, settings, curve, commands
            )  # after every point: an interrupted curve keeps what it measured
    summary = write(out, args, settings, curve, commands)
    print(f"{'epochs':>6}  {'seeds':>5}  {'mean val':>8}  {'mean test':>9}")
    for point in summary["by_epochs"]:
        print(f"{point['epochs']:>6}  {point['seeds']:>5}  {point['mean_acc']:>8.4f}  {point['mean_test_acc']:>9.4f}")
    print(
        f"best mean validation accuracy over {summary['seeds_compared']} seeds {summary['best_mean_acc']:.4f}; "
        f"shortest within {args.tolerance} pt: {summary['chosen_epochs']} epochs; wrote {out}"
    )


def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, data) -> float:
    probs = predict(model, images, mean=data.mean, std=data.std, device=torch.device("cpu"))
    return float((probs.argmax(axis=1) == labels.numpy()).mean())  # neither split is empty


def by_epochs(curve: list[dict]) -> list[dict]:
    """Mean validation accuracy per epoch count (what the choice reads), over the seeds it ran with,
    and the mean test accuracy beside it (reported only)."""
    out = []
    for epochs in sorted({p["epochs"] for p in curve}):
        points = [p for p in curve if p["epochs"] == epochs]
        accs = [p["val_acc"] for p in points]
        out.append(
            {
                "epochs": epochs,
                "seeds": len(accs),
                "mean_acc": sum(accs) / len(accs),
                "min_acc": min(accs),
                "max_acc": max(accs),
                "mean_test_acc": sum(p["test_acc"] for p in points) / len(points),
            }
        )
    return out


def write(out: Path, args: argparse.Namespace, settings, curve: list[dict], commands: list[str]) -> dict:
    means = by_epochs(curve)
    # Only epoch counts run with the most seeds compete: a single-seed point is noisier than the tolerance.
    most = max(point["seeds"] for point in means)
    eligible = [point for point in means if point["seeds"] == most]
    best = max(point["mean_acc"] for point in eligible)
    chosen = min((p for p in eligible if p["mean_acc"] >= best - args.tolerance / 100), key=lambda p: p["epochs"])
    summary = {
        "model": args.model,
        "labels": args.labels,
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        "validation": args.validation,
        "chosen_on": "validation accuracy (data.validation held out of the pool)",
        "tolerance_pt": args.tolerance,
        "curve": curve,
        "by_epochs": means,
        "seeds_compared": most,
        "best_mean_acc": best,
        "chosen_epochs": chosen["epochs"],
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads",
        "commands": commands,
    }
    out.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    main()
