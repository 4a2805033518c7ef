"""clactive's selection time against a plain one-process torch loop doing the same work.

    .venv/bin/python -m benchmarks.plain_loop [--config configs/fashion_mnist_compare.yaml] [--repeats 1]

The same rounds, twice in one sitting, alternating when --repeats > 1:

  plain     pipeline.loop.rounds.Rounds in this process, with no Ray: the scoring pass is
            benchmarks.common.plain_select (the same shards, batch size, model, acquisition and
            top-k as the scorers) and the update is pipeline.update.training.train_steps on the rows read
            by id, as the Ray Train worker does; every torch call gets all the machine's cores
  clactive  `clactive compare` with the same config, clactive alone and no target fits: Ray Data
            scorers, the Ray Train worker group, the coordinator actor

Both run the config's schedule (Fashion-MNIST: 2% then rounds ending at 10..50%), the round loop's
own selection, labels, replay memory and update plans, and are timed by the same definition
(pipeline.report.summary: score + select + update, less the update's test evaluation and the learner's
one-time start-up), summed over every round to the last. The figure is clactive / plain; the
issue's target is <= 1.3. Writes benchmarks/results/plain_loop.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import torch

from benchmarks.common import plain_collect, plain_select, prepared, print_table, spread, write_result
from pipeline.compare import entry_config, load
from pipeline.config.run_config import RunConfig
from pipeline.data import PreparedData, read_rows, resolve_augment
from pipeline.data.pool import split_files
from pipeline.labels.labelling import make_oracle
from pipeline.loop.preflight import plan_run
from pipeline.loop.rounds import Rounds
from pipeline.loop.run_store import RunStore
from pipeline.loop.seams import ScoredPass, UpdateResult
from pipeline.report.summary import round_costs
from pipeline.update.evaluation import EpochCurve, Split, evaluate
from pipeline.update.models import create_model
from pipeline.update.strategies import UpdatePlan
from pipeline.update.training import (
    checkpoint_bytes,
    load_optimizer,
    load_weights,
    make_optimizer,
    train_steps,
)

SETS = ["compare.strategies=[clactive]", "compare.budgets=null"]  # the selection rounds alone: no target fits


class PlainScorers:
    """The scoring pass in this process (benchmarks.common.plain_select)."""

    def __init__(self, config: RunConfig, data: PreparedData):
        self.config, self.data = config, data

    def start(self) -> None:
        pass

    def select(self, weights, labelled_ids, k, seed, round_index=None, pool=None, candidate_ids=None):
        chosen, seconds = plain_select(
            self.config,
            self.data,
            self.config.proxy.name,
            weights,
            labelled_ids,
            k,
            seed,
            threads=os.cpu_count() or 1,
            candidate_ids=candidate_ids,
        )
        scored = len(candidate_ids) if candidate_ids is not None else self.data.pool_size - len(labelled_ids)
        return ScoredPass(chosen, scored, {"score": seconds, "select": 0.0, "score_compute": seconds})

    def collect(self, weights, acquisition, candidate_ids):
        threads = os.cpu_count() or 1
        return plain_collect(
            self.config, self.data, self.config.proxy.name, weights, acquisition, candidate_ids, threads
        )

    def close(self) -> None:
        pass


CPU = torch.device("cpu")


def _split(data: PreparedData, split: str) -> Split:
    ids = pads.dataset(data.split_dir(split), format="parquet").to_table(columns=["id"]).column("id")
    images, labels = read_rows(data.split_dir(split), ids.to_numpy(), data.image_shape)
    return Split(torch.from_numpy(images), labels)


class PlainLearner:
    """actors.train_loop's train loop in this process: live models by role, rows read by id, one evaluation."""

    def __init__(self, config: RunConfig, data: PreparedData):
        self.config, self.data = config, data
        self.augment = resolve_augment(config.data)
        self.live: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]] = {}
        self.test = _split(data, "test")
        self.validation = _split(data, "validation") if data.validation_size else None

    def start(self) -> None:
        pass

    def update(self, plan: UpdatePlan, labels, rows_from, seed, resume_from, round_index) -> UpdateResult:
        torch.set_num_threads(os.cpu_count() or 1)
        start = time.perf_counter()
        images = read_rows(
            rows_from or split_files(self.data.split_dir("pool")), plan.train_ids, self.data.image_shape
        )[0]
        images, labels = torch.from_numpy(images), torch.from_numpy(np.asarray(labels))
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        if not plan.warm_start or plan.role not in self.live:
            self.live[plan.role] = self._new_model(plan, seed, resume_from)
        model, optimizer = self.live[plan.role]
        curve = (
            None
            if self.validation is None or plan.warm_start
            else EpochCurve(model, self.validation, self.data, CPU, len(labels), plan.batch_size, plan.steps)
        )
        trained = train_steps(
            model,
            optimizer,
            images,
            labels,
            steps=plan.steps,
            batch_size=plan.batch_size,
            lr=plan.lr,
            mean=self.data.mean,
            std=self.data.std,
            generator=torch.Generator().manual_seed(seed),
            device=CPU,
            augment=self.augment,
            on_step=curve,
        )
        curve_s = 0.0 if curve is None else curve.seconds
        train_s = time.perf_counter() - start - curve_s
        start = time.perf_counter()
        return UpdateResult(
            **trained,
            **evaluate(model, self.test, self.validation, self.data, CPU, None if curve is None else curve.final),
            val_acc_per_epoch=None if curve is None else curve.accuracies,
            eval_s=time.perf_counter() - start + curve_s,
            read_s=read_s,
            train_s=train_s,
            device="cpu",
            checkpoint=checkpoint_bytes(model, optimizer),
        )

    def _new_model(self, plan: UpdatePlan, seed: int, resume_from: bytes | None):
        model_config = self.config.proxy if plan.role == "proxy" else self.config.target
        torch.manual_seed(seed)
        model = create_model(model_config.name, self.data.image_shape[0], self.data.num_classes)
        if plan.warm_start and resume_from:
            load_weights(model, resume_from)
        optimizer = make_optimizer(model, model_config, lr=plan.lr)
        if plan.warm_start and resume_from:
            load_optimizer(optimizer, resume_from)
        return model, optimizer

    def close(self) -> None:
        pass


def plain_run(config: RunConfig, data: PreparedData) -> list[dict]:
    plan = plan_run(config, data)
    store = RunStore.create(config.run_dir, config)
    rounds = Rounds(plan, store, PlainScorers(config, data), PlainLearner(config, data), make_oracle(plan, store))
    return [rounds.run_round(r) for r in range(plan.num_rounds)]


def ray_run(path: str, compare_dir: Path) -> list[dict]:
    sets = [*SETS, f"compare.dir={compare_dir}"]
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "compare",
        "--config",
        path,
        "--quiet",
        *[arg for s in sets for arg in ("--set", s)],
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return RunStore(compare_dir / "clactive").records()


def plain_config(path: str, run_dir: Path) -> RunConfig:
    """The config the compare's clactive entry runs with, in `run_dir`."""
    base, section = load(path, SETS, quick=False, data_dir=None)
    return replace(entry_config(base, section, "clactive"), run_dir=str(run_dir))


PARTS = ("selection_s", "score_s", "score_compute_s", "update_s", "round_0_update_s", "train_s")


def costs(records: list[dict]) -> dict:
    """Seconds summed over the rounds (pipeline.report.summary's definitions), and where they went: the
    scoring passes' compute, the first round's update (a from-scratch fit, and the Ray Train worker
    group's start), the later updates' training steps."""
    rounds = [round_costs(r) for r in records]
    out = {part: sum(c[part] for c in rounds) for part in ("score_s", "select_s", "update_s", "selection_s")}
    return out | {
        "score_compute_s": sum(r["seconds"]["score_compute"] for r in records),
        "round_0_update_s": rounds[0]["update_s"],
        "train_s": sum(r["seconds"]["train"] for r in records[1:]),
        "labelled": records[-1]["labelled"],
        "proxy_acc": records[-1]["selection_acc"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/fashion_mnist_compare.yaml")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--run-root", default="runs/bench-plain-loop")
    args = parser.parse_args()
    root = Path(args.run_root)
    shutil.rmtree(root, ignore_errors=True)
    data = prepared(plain_config(args.config, root))
    runs: dict[str, list[dict]] = {"plain": [], "clactive": []}
    for i in range(args.repeats):
        runs["plain"].append(costs(plain_run(plain_config(args.config, root / f"plain-{i}"), data)))
        runs["clactive"].append(costs(ray_run(args.config, root / f"clactive-{i}")))
        print(
            f"repeat {i}: plain {runs['plain'][-1]['selection_s']:.1f} s, "
            f"clactive {runs['clactive'][-1]['selection_s']:.1f} s",
            flush=True,
        )
    ratios = [c["selection_s"] / p["selection_s"] for p, c in zip(runs["plain"], runs["clactive"])]
    summary = {
        name: {part: spread([r[part] for r in rs]) for part in PARTS}
        | {"labelled": rs[0]["labelled"], "proxy_acc": [r["proxy_acc"] for r in rs]}
        for name, rs in runs.items()
    }
    print_table(
        [
            "run",
            "labelled",
            "selection s",
            "score s",
            "of which compute s",
            "update s",
            "round 0 update s",
            "later rounds' training s",
            "proxy acc",
        ],
        [
            [name, s["labelled"], *(s[part]["median"] for part in PARTS), " ".join(f"{a:.4f}" for a in s["proxy_acc"])]
            for name, s in summary.items()
        ],
    )
    path = write_result(
        "plain_loop",
        {
            "config": args.config,
            "sets": SETS,
            "repeats": args.repeats,
            "by_run": summary,
            "selection_ratio": spread(ratios),
            "selection_ratio_vs_plain": spread(ratios)["median"],
        },
    )
    print(f"clactive / plain selection time: {spread(ratios)['median']:.3f}; wrote {path}")


if __name__ == "__main__":
    main()
