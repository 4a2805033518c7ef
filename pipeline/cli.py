"""`clactive run`: the entry point of `make run`, `python -m pipeline` and `ray job submit`;
`clactive label import|simulate` and `clactive status`, which read the run directory and need no Ray.

User errors (config, data, run directory, answers) print one line and exit with code 2, before
Ray starts where they can be known that early.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import asdict, replace


from pipeline.config import RunConfig, load_config, resolve_schedule, validate
from pipeline.data import prepare_data, source_names
from pipeline.data.pool import check_against_data, split_files
from pipeline.errors import ClactiveError
from pipeline.faults import HOOK_ENV, check_hook
from pipeline.oracle import (LabelRequests, check_continuable, import_answers, open_request, simulate_answers,
                             status_lines, waiting_message)
from pipeline.run_store import RunStore

USAGE_ERROR = 2
COORDINATOR_RESTARTS = 3  # a coordinator that dies is restarted and reloads the run directory
CLOSE_TIMEOUT_S = 60  # a graceful stop of the learner's worker group, when a run is interrupted
COLUMNS = [("round", 5, "{:d}"), ("labelled", 8, "{:d}"), ("acquired", 8, "{:d}"), ("score s", 7, "{:.1f}"),
           ("select s", 8, "{:.2f}"), ("train s", 7, "{:.1f}"), ("steps", 6, "{:d}"), ("eval s", 6, "{:.1f}"),
           ("overhead s", 10, "{:.1f}"), ("acc", 6, "{:.4f}")]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["clactive", *(sys.argv[1:] if argv is None else argv)])  # for reports
    try:
        return args.handler(args)
    except ClactiveError as exc:
        print(f"clactive: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except Exception as exc:  # a user error raised inside a Ray actor arrives wrapped
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ClactiveError):
            print(f"clactive: error: {cause}", file=sys.stderr)
            return USAGE_ERROR
        raise


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clactive", description="CLActive active learning on Ray")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run active learning rounds and report each as it completes")
    _config_options(run, "YAML config (default: built-in defaults)", "schedule.rounds=3")
    run.add_argument("--strategy", help="full | svp | clactive | finetune")
    run.add_argument("--acquisition", help="least_confidence | entropy | margin | random | k_center")
    run.add_argument("--run-dir", help="where the run writes its records (must be new or empty)")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="continue the run in RUN_DIR after its last completed round, with its own config "
                          "(re-running with the same config and --run-dir does the same)")
    run.add_argument("--accept-partial", action="store_true",
                     help="oracle: external: continue the open round with the labels answered so far")
    run.set_defaults(handler=_run)

    label = commands.add_parser("label", help="oracle: external: answer a round's label request")
    actions = label.add_subparsers(dest="action", required=True)
    answers = actions.add_parser("import", help="check answers (CSV or Parquet with columns id,label) against the "
                                                "open request and store them")
    answers.add_argument("run_dir", metavar="RUN_DIR")
    answers.add_argument("file", metavar="FILE")
    answers.set_defaults(handler=_label_import)
    simulate = actions.add_parser("simulate", help="answer the open request from the pool's label column "
                                                   "(tests and demos)")
    simulate.add_argument("run_dir", metavar="RUN_DIR")
    simulate.add_argument("--count", type=int, help="answer only this many of the missing ids (default: all)")
    simulate.add_argument("--data-dir", help="directory holding the dataset's files (default: the run's own)")
    simulate.set_defaults(handler=_label_simulate)

    status = commands.add_parser("status", help="rounds done, labels acquired, the open label request")
    status.add_argument("run_dir", metavar="RUN_DIR")
    status.set_defaults(handler=_status)

    compare = commands.add_parser("compare", help="every strategy side by side: selection time, update time and "
                                                  "target accuracy, with speed-ups (resumable)")
    _config_options(compare, "YAML: a run config plus a `compare:` section (e.g. configs/fashion_mnist_compare.yaml)",
                    "compare.strategies=[svp,clactive]")
    compare.add_argument("--quick", action="store_true",
                         help="a smoke run: 1%% initial set, two 1%% rounds, short schedules, its own directory")
    compare.set_defaults(handler=_compare)

    search = commands.add_parser("tune", help="search the replay memory and step budget with Ray Tune: trial table, "
                                              "accuracy/time Pareto front, best config (resumable)")
    _config_options(search, "YAML: a run config plus a `tune:` section (e.g. configs/fashion_mnist_tune.yaml)",
                    "tune.num_samples=4")
    search.set_defaults(handler=_tune)
    return parser


def _config_options(command: argparse.ArgumentParser, config_help: str, set_example: str) -> None:
    """Where a command's config comes from: a YAML file, the data source, and --set overrides."""
    command.add_argument("--config", help=config_help)
    command.add_argument("--dataset", help=f"the data source: {' | '.join(source_names())} (default fashion_mnist)")
    command.add_argument("--data-dir", help="directory holding the dataset's files")
    command.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help=f"override any config key, e.g. --set {set_example} (repeatable)")
    command.add_argument("--address", help="the Ray cluster to join, host:port (default: RAY_ADDRESS when set, "
                                           "else a Ray started for this run; auto: the cluster `ray start` "
                                           "started on this machine)")
    command.add_argument("--verbose", action="store_true", help="show Ray's own log lines as well")


def _tune(args: argparse.Namespace) -> int:
    from tune.search import main as tune_main
    return tune_main(_dataset_as_override(args))


def _compare(args: argparse.Namespace) -> int:
    from pipeline.compare import main as compare_main
    return compare_main(_dataset_as_override(args))


def _dataset_as_override(args: argparse.Namespace) -> argparse.Namespace:
    if args.dataset:
        args.overrides = [f"data.dataset={args.dataset}", *args.overrides]
    return args


def _status(args: argparse.Namespace) -> int:
    print("\n".join(status_lines(RunStore.open(args.run_dir))))
    return 0


def _label_import(args: argparse.Namespace) -> int:
    store = RunStore.open(args.run_dir)
    print(import_answers(store, args.file).describe(store.location))
    return 0


def _label_simulate(args: argparse.Namespace) -> int:
    store = RunStore.open(args.run_dir)
    if args.count is not None and args.count < 1:
        raise ClactiveError(f"--count {args.count}: answer at least 1 id, or leave --count out to answer all")
    request = open_request(store)  # none open: say so before reading any data
    config = store.saved_config()
    data = prepare_data(replace(config.data, data_dir=args.data_dir or config.data.data_dir))
    # every file an id may come from: the prepared pool and every arrival shard admitted so far
    admitted = [path for record in store.records() for path in record.get("admitted", [])]
    files = split_files(data.split_dir("pool")) + admitted + request.meta["admitted"]
    print(simulate_answers(store, files, data.image_shape, args.count).describe(store.location))
    return 0


def connect(address: str | None, verbose: bool) -> None:
    from actors.cluster import connect as start_or_join  # Ray is imported only when a run starts
    start_or_join(address, verbose)


def _run(args: argparse.Namespace) -> int:
    if args.resume:
        if args.config or args.overrides or args.strategy or args.acquisition or args.run_dir or args.dataset:
            raise ClactiveError("--resume continues a run with its own config: drop --config, --set, --strategy, "
                                "--acquisition, --dataset and --run-dir")
        config = replace(RunStore.open(args.resume).saved_config(), run_dir=args.resume)
        if args.data_dir:
            config = replace(config, data=replace(config.data, data_dir=args.data_dir))
        validate(config)
    else:
        config = load_config(args.config, args.overrides, strategy=args.strategy, acquisition=args.acquisition,
                             run_dir=args.run_dir, **{"data.dataset": args.dataset, "data.data_dir": args.data_dir})
    data = prepare_data(config.data, start_ray=lambda: connect(args.address, args.verbose))
    resolve_schedule(config.schedule, data.pool_size)  # budgets vs pool size, before Ray starts
    check_against_data(config, data)
    if args.accept_partial and config.oracle != "external":
        raise ClactiveError(f"--accept-partial continues a round that waits for people's labels, but this run's "
                            f"oracle is {config.oracle}: drop --accept-partial")
    if RunStore(config.run_dir).holds_run():
        store = RunStore.open(config.run_dir, None if args.resume else config)  # refuses a different config or a damaged run
        if config.oracle == "external":
            check_continuable(store, args.accept_partial)  # a round waiting for answers it lacks
        action = "resuming"
    else:
        RunStore.check_new(config.run_dir)  # created once Ray confirmed the resources fit
        action = "new run"
    if os.environ.get(HOOK_ENV):
        try:
            check_hook(os.environ[HOOK_ENV])
        except ValueError as exc:
            raise ClactiveError(str(exc)) from None
    connect(args.address, args.verbose)  # an unreachable address fails here, before anything is written
    print(f"clactive: {config.strategy} / {config.acquisition} on {data.dataset} "
          f"({data.pool_size} pool, {data.sizes['test']} test) -> {config.run_dir} ({action})", flush=True)
    result = run_rounds(config, asdict(data), print_row=print_row, accept_partial=args.accept_partial)
    if result["waiting"] is not None:
        store = RunStore(config.run_dir)
        print(waiting_message(store, LabelRequests(store).get(result["waiting"]["round"])), flush=True)
    return 0


def run_rounds(config: RunConfig, data: dict, print_row=None, no_progress_timeout_s: float | None = None,
               target_rounds: list[int] | None = None, accept_partial: bool = False) -> dict:
    """Start (or join) Ray, run every round through the coordinator actor, then fit the target
    from scratch on the labels of each of `target_rounds` (default: the last round, when
    `config.train_target_at_end`).

    Creates the run directory if `config.run_dir` holds no run yet, after the resource check,
    so a request the cluster can never satisfy leaves nothing behind.
    With `oracle: external` the rounds stop at the first one whose label request is not answered
    (accept_partial: not answered at all); no target is fitted then.
    Returns {"records": [round records], "targets": {round: target fit}, "final": the last fit or None,
    "waiting": None, or {"round", "waiting": labels missing, "requested"} of the paused round}.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from actors.cluster import connect
    from actors.coordinator import Coordinator
    from actors.resources import check_fits

    connect()  # the CLI connected already, to the address it was given; others get RAY_ADDRESS or a local Ray
    check_fits(config)
    if not RunStore(config.run_dir).holds_run():
        RunStore.create(config.run_dir, config)
    # On the driver's node, as Ray Train does with its controller: the run directory is written from there.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    coordinator = Coordinator.options(scheduling_strategy=here, max_restarts=COORDINATOR_RESTARTS,
                                      max_task_retries=COORDINATOR_RESTARTS).remote(
        config.to_dict(), data, config.run_dir, no_progress_timeout_s, os.environ.get(HOOK_ENV), accept_partial)
    try:
        if print_row:
            print_row = _after_header(print_row)  # a run that pauses before its first row prints no table
        records = ray.get(coordinator.completed_records.remote())
        for record in records if print_row else []:
            print_row(record)
        num_rounds = ray.get(coordinator.num_rounds.remote())
        waiting = None
        for r in range(len(records), num_rounds):
            outcome = ray.get(coordinator.run_round.remote(r))
            if "waiting" in outcome:  # round r asked people for labels and waits for their answers
                waiting = outcome
                break
            records.append(outcome)
            if print_row:
                print_row(records[-1])
        if waiting is not None:
            target_rounds = []
        elif target_rounds is None:
            target_rounds = [num_rounds - 1] if config.train_target_at_end else []
        targets = {}
        for r in target_rounds:
            targets[r] = fit = ray.get(coordinator.train_target.remote(r))
            if print_row:
                print(f"target {fit['target']} trained from scratch on {fit['labelled']} labels: "
                      f"test accuracy {fit['target_acc']:.4f} ({fit['seconds']['train']:.1f} s)", flush=True)
        ray.get(coordinator.close.remote())
        return {"records": records, "targets": targets, "final": targets[target_rounds[-1]] if target_rounds else None,
                "waiting": waiting}
    except BaseException:
        # A Tune scheduler stops a trial by raising SystemExit in its report, between rounds. Killed
        # under a live worker group, Ray Train would restart the group as the trial dies and leave
        # the new group's placement group holding CPUs: the next trial's reads then wait forever.
        try:
            ray.get(coordinator.close.remote(), timeout=CLOSE_TIMEOUT_S)
        except Exception:  # the coordinator itself failed; the kill below is all that is left
            pass
        raise
    finally:
        ray.kill(coordinator)


def _print_header() -> None:
    print("  ".join(f"{name:>{width}}" for name, width, _ in COLUMNS), flush=True)


def _after_header(print_row):
    """`print_row` that prints the table's header before its first row."""
    printed = []

    def first_header_then_row(record: dict) -> None:
        if not printed:
            _print_header()
            printed.append(True)
        print_row(record)
    return first_header_then_row


def print_row(record: dict) -> None:
    s = record["seconds"]
    values = [record["round"], record["labelled"], record["acquired"], s["score"], s["select"], s["train"],
              record["steps"], s["eval"], s["learner_overhead"], record["selection_acc"]]
    print("  ".join(f"{fmt.format(v):>{width}}" for (_, width, fmt), v in zip(COLUMNS, values)), flush=True)
    for note in recovered(record):
        print(f"       {note}", flush=True)


def recovered(record: dict) -> list[str]:
    """What a round recovered from (its record says), in clactive's words rather than Ray's logs."""
    notes = []
    if record.get("coordinator_restarted"):
        notes.append("the coordinator died in this round; Ray restarted it and the round was redone from its start")
    if record.get("redone_passes"):
        notes.append(f"a scoring actor died; Ray restarted it and the scoring pass was redone "
                     f"({record['redone_passes']} time(s))")
    return notes


if __name__ == "__main__":
    sys.exit(main())
