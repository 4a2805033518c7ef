"""Why a scoring pass inside a run computes slower than the plain loop: CPU by process, and torch beside a load.

    .venv/bin/python -m benchmarks.scoring_profile [--config configs/fashion_mnist_compare.yaml]
        [--loads 0,0.15@10,0.15@1,0.05@1] [--repeats 3]

Two measurements in one sitting (Linux: it reads /proc; every process of the run on this node):

  processes  the plain-loop benchmark's Ray side (`clactive compare`, clactive alone, no target
             fits) while a thread of this process samples every process's CPU seconds once a
             second: the CPU each kind of process took in the seconds the scorer was inside
             Scorer.score, and the scorer's compute seconds from the run's records.
  load       one scoring pass over the whole pool (benchmarks.common.plain_select: the scorers'
             model, batch size and acquisition, no Ray) in this process, on 1 and on 2 torch
             threads, beside a child process that keeps a fraction of one core busy, in bursts
             once every so many ms (`0.15@1`: 0.15 ms of every 1 ms): what other processes' CPU,
             and how often they wake, costs a pass whose threads work in lockstep.

Writes benchmarks/results/scoring_profile.json.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import re
import shutil
import statistics
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.common import plain_select, prepared, print_table, write_result
from benchmarks.plain_loop import costs, plain_config, ray_run
from pipeline.update.models import create_model
from pipeline.update.training import checkpoint_bytes

SCORING = "ray::Scorer.score"  # a Ray worker's process title while it runs that method


def kind(cmdline: str) -> str:
    """A process's kind from its command line (Ray workers carry their actor or task in their title)."""
    title = re.match(r"ray::(\S+)", cmdline)
    if title:
        name = title.group(1).split(".")[0]
        if name.startswith("Read") or name == "IDLE":  # a task worker: during a pass, the pool's read tasks
            return "task workers (read tasks)"
        if name in ("DashboardAgent", "RuntimeEnvAgent"):
            return "Ray daemons"
        return {"Scorer": "scorer", "RayTrainWorker": "Train worker", "Coordinator": "coordinator"}.get(
            name, "other Ray actors"
        )
    for daemon in ("raylet", "gcs_server", "dashboard", "log_monitor", "monitor.py"):
        if daemon in cmdline:
            return "Ray daemons"
    return "compare driver" if "pipeline compare" in cmdline else "other"


class CpuSampler:
    """Every process's CPU seconds once a second, on a thread: samples[i] = {(pid, cmdline): CPU s in second i}."""

    def __init__(self, interval_s: float = 1.0):
        self.interval_s, self.samples, self._stop = interval_s, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        before = cpu_seconds()
        while not self._stop.wait(self.interval_s):
            now = cpu_seconds()
            # by pid: a Ray worker's title (its cmdline) changes with the method it runs; a new pid's
            # CPU so far all falls in this second
            used = {
                (pid, cmdline): total - before[pid][1] if pid in before else total
                for pid, (cmdline, total) in now.items()
            }
            self.samples.append({key: seconds for key, seconds in used.items() if seconds > 0})
            before = now


def cpu_seconds() -> dict[str, tuple[str, float]]:
    """{pid: (cmdline, user + system CPU seconds so far)} of every process this user can read."""
    tick, out = os.sysconf("SC_CLK_TCK"), {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # gone since the listing
            continue
        out[pid] = (cmdline, (int(fields[11]) + int(fields[12])) / tick)  # utime, stime (stat fields 14, 15)
    return out


def during_scoring(samples: list[dict]) -> tuple[int, dict[str, float]]:
    """The seconds in which the scorer was inside Scorer.score, and the CPU seconds each kind took in them."""
    scoring = [s for s in samples if any(cmdline.startswith(SCORING) for _, cmdline in s)]
    by_kind = collections.Counter()
    for sample in scoring:
        for (_, cmdline), used in sample.items():
            by_kind[kind(cmdline)] += used
    return len(scoring), dict(by_kind)


def busy(load: float, period_s: float, stop) -> None:
    """A child process: `load` of one core busy, one burst every `period_s`, until `stop` is set."""
    while not stop.is_set():
        start = time.perf_counter()
        while time.perf_counter() - start < load * period_s:
            pass
        time.sleep(period_s * (1 - load))


def parse_load(text: str) -> tuple[float, float]:
    """ "0.15@1" -> (0.15 of a core, a burst every 0.001 s); "0" -> no load."""
    fraction, _, period_ms = text.partition("@")
    return float(fraction), float(period_ms or 10) / 1000


def pass_beside(load: str, threads: int, config, data, weights: bytes) -> tuple[float, float]:
    """Wall and CPU seconds (this process's) of one plain scoring pass over the whole pool beside `load`
    (parse_load) kept busy."""
    fraction, period_s = parse_load(load)
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    child = spawn.Process(target=busy, args=(fraction, period_s, stop)) if fraction > 0 else None
    if child:
        child.start()
        time.sleep(1)  # its interpreter is up and spinning
    try:
        cpu_before = time.process_time()
        wall = plain_select(
            config, data, config.proxy.name, weights, np.empty(0, np.int64), k=600, seed=0, threads=threads
        )[1]
        return wall, time.process_time() - cpu_before
    finally:
        if child:
            stop.set()
            child.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/fashion_mnist_compare.yaml")
    parser.add_argument(
        "--loads",
        default="0,0.15@10,0.15@1,0.05@1",
        help="beside the pass: a fraction of one core kept busy @ one burst every so many ms; "
        "the first is the plain pass the run is compared with",
    )
    parser.add_argument("--repeats", type=int, default=3, help="passes per cell (the median is reported)")
    parser.add_argument("--run-root", default="runs/bench-scoring-profile")
    args = parser.parse_args()
    root = Path(args.run_root)
    shutil.rmtree(root, ignore_errors=True)
    config = plain_config(args.config, root / "plain")
    data = prepared(config)

    run = profile_run(args.config, root / "clactive")
    time.sleep(10)  # the run's Ray is gone before the passes start
    loads = args.loads.split(",")
    runs = passes_beside_loads(loads, args.repeats, config, data)
    walls = {
        threads: {load: statistics.median(w for w, _ in runs[threads, load]) for load in loads} for threads in (2, 1)
    }
    print(
        f"one plain pass over the {data.pool_size} pool, median seconds of {args.repeats}, beside a fraction of a "
        "core kept busy @ one burst every so many ms:"
    )
    print_table(
        ["torch threads", *(f"load {load}" for load in loads)],
        [[t, *(walls[t][load] for load in loads)] for t in walls],
    )

    # The run's compute against the plain pass's, split into CPU per image and cores had
    images, scorer_cpu = run["images_scored"], run["cpu_s_by_process_while_scoring"].get("scorer", 0.0)
    plain_wall, plain_cpu = walls[2][loads[0]], statistics.median(c for _, c in runs[2, loads[0]])
    split = {
        "compute_ratio": run["score_compute_s"] / (images * plain_wall / data.pool_size),
        "scorer_cpu_s_per_1000": 1000 * scorer_cpu / images,
        "plain_cpu_s_per_1000": 1000 * plain_cpu / data.pool_size,
        "scorer_cores": scorer_cpu / max(run["scoring_seconds"], 1),
        "plain_cores": plain_cpu / plain_wall,
    }
    print(
        f"the run's scorer against the plain pass (2 threads, load {loads[0]}) over {images} images: "
        f"compute {split['compute_ratio']:.2f}x = CPU per image {split['scorer_cpu_s_per_1000']:.3f} / "
        f"{split['plain_cpu_s_per_1000']:.3f} s per 1000, on {split['scorer_cores']:.2f} / "
        f"{split['plain_cores']:.2f} cores"
    )
    path = write_result(
        "scoring_profile",
        {
            "config": args.config,
            **run,
            **split,
            "plain_pass_s_by_threads_and_load": {str(t): w for t, w in walls.items()},
            "plain_pass_s_runs": {f"{t} threads, load {load}": [w for w, _ in r] for (t, load), r in runs.items()},
        },
    )
    print(f"wrote {path}")


def profile_run(config_path: str, run_dir: Path) -> dict:
    """The plain-loop benchmark's Ray side, sampled: the cores each kind of process took while the scorer scored."""
    with CpuSampler() as sampler:
        records = ray_run(config_path, run_dir)
    seconds, by_kind = during_scoring(sampler.samples)
    summed = costs(records)  # the plain-loop benchmark's sums over the rounds
    run = {
        "scoring_seconds": seconds,
        "cpu_s_by_process_while_scoring": by_kind,
        "images_scored": sum(r["candidates"] for r in records if r["seconds"]["score_compute"] > 0),
        "score_s": summed["score_s"],
        "score_compute_s": summed["score_compute_s"],
    }
    print(
        f"the run's scoring passes: {run['score_s']:.1f} s, of which the scorer computed "
        f"{run['score_compute_s']:.1f} s; the {seconds} s the scorer was in {SCORING}, CPU seconds by process:"
    )
    print_table(
        ["process", "CPU s", "cores"],
        [[k, v, v / max(seconds, 1)] for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])],
    )
    return run


def passes_beside_loads(loads: list[str], repeats: int, config, data) -> dict[tuple[int, str], list]:
    """{(torch threads, load): [(wall, CPU seconds) of each repeat]}, 2 and 1 threads."""
    weights = checkpoint_bytes(create_model(config.proxy.name, data.image_shape[0], data.num_classes))
    pass_beside("0", 2, config, data, weights)  # warm: the first pass of a process pays its allocations
    runs = collections.defaultdict(list)
    for _ in range(repeats):  # interleaved, so drift on a shared machine hits every cell
        for threads in (2, 1):
            for load in loads:
                runs[threads, load].append(pass_beside(load, threads, config, data, weights))
    return runs


if __name__ == "__main__":
    main()
