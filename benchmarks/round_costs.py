"""What each clactive round costs: the proxy update (it must stay flat) and the framework's overhead.

Runs the default config's clactive job with `--rounds` rounds of `--round-size` of the pool
(default 10 x 1%) and no target fit, then reads its round records:

  update s        the Ray Train job minus the test-set evaluation and the learner handle's construction
                  (the figure `report.round_costs` uses); round 0 trains from scratch, so the flat
                  series is rounds 1..N
  overhead s      what the framework adds around the computation:
                    scoring  the Ray Data pass minus the seconds the scoring actors computed
                             (dataset planning, actor start-up and model load, block transfers)
                    learner  the Ray Train job minus training and evaluation (worker-group start-up
                             in the round that pays it, object transfers, the mailbox)
  overhead share  the sum of overhead s over the sum of round s, over all rounds (start-up included)
                  and over rounds 1..N (the steady state)

The run directory is resumable: a re-run continues it (the learner then starts again, and that
round shows it).

    .venv/bin/python -m benchmarks.round_costs --rounds 10
"""

from __future__ import annotations

import argparse

from actors.driver import run_rounds
from benchmarks.common import prepared, print_table, spread, start_ray, write_result
from pipeline.config.run_config import load_config
from pipeline.loop.preflight import plan_run
from pipeline.loop.run_store import RunStore
from pipeline.report.summary import round_costs


def overhead(record: dict) -> dict[str, float]:
    s = record["seconds"]
    return {"scoring": s["score"] - s.get("score_compute", 0.0), "learner": s["learner_overhead"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/fashion_mnist.yaml")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--round-size", default="0.01")
    parser.add_argument("--run-dir", default="runs/bench-round-costs")
    args = parser.parse_args()

    config = load_config(
        args.config,
        [
            f"schedule.round_size={args.round_size}",
            f"schedule.rounds={args.rounds}",
            "train_target_at_end=false",
            "strategy=clactive",
        ],
        run_dir=args.run_dir,
    )
    data = prepared(config)
    if RunStore(args.run_dir).holds_run():
        RunStore.open(args.run_dir, config)  # refuses a run made with other settings
    start_ray()
    records = run_rounds(plan_run(config, data), no_progress_timeout_s=600)["records"]

    rows, per_round = [], []
    for record in records:
        s, costs, extra = record["seconds"], round_costs(record), overhead(record)
        total_overhead = extra["scoring"] + extra["learner"]
        per_round.append(
            {
                "round": record["round"],
                "labelled": record["labelled"],
                "steps": record["steps"],
                "update_s": costs["update_s"],
                "train_s": s["train"],
                "score_s": s["score"],
                "score_compute_s": s.get("score_compute", 0.0),
                "round_s": s["round"],
                "overhead_s": {**extra, "total": total_overhead},
                "selection_acc": record["selection_acc"],
            }
        )
        rows.append(
            [
                record["round"],
                record["labelled"],
                record["steps"],
                costs["update_s"],
                s["score"],
                s.get("score_compute", 0.0),
                extra["scoring"],
                extra["learner"],
                s["round"],
                total_overhead / s["round"],
            ]
        )
    print_table(
        [
            "round",
            "labelled",
            "steps",
            "update s",
            "score s",
            "compute s",
            "scoring ovh s",
            "learner ovh s",
            "round s",
            "ovh share",
        ],
        rows,
    )

    updates = [r["update_s"] for r in per_round[1:]]
    share_all = sum(r["overhead_s"]["total"] for r in per_round) / sum(r["round_s"] for r in per_round)
    share_steady = sum(r["overhead_s"]["total"] for r in per_round[1:]) / sum(r["round_s"] for r in per_round[1:])
    figures = {
        "update_time_ratio_last_first": updates[-1] / updates[0],
        "update_time_ratio_last3_first3": spread(updates[-3:])["median"] / spread(updates[:3])["median"],
        "update_s_rounds_1_to_n": spread(updates),
        "overhead_share": share_all,
        "overhead_share_steady": share_steady,
    }
    path = write_result(
        "round_costs",
        {
            "run_dir": args.run_dir,
            "round_size": args.round_size,
            "rounds": args.rounds,
            "update_steps": config.update.steps,
            "per_round": per_round,
            **figures,
        },
    )
    print(
        f"update s, last / first warm round: {figures['update_time_ratio_last_first']:.3f} "
        f"(medians of 3: {figures['update_time_ratio_last3_first3']:.3f}); framework overhead share "
        f"{share_all:.3f} of all round time ({share_steady:.3f} after round 0); wrote {path}"
    )


if __name__ == "__main__":
    main()
