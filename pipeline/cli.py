"""`clactive run`: the entry point of `make run`, `python -m pipeline` and `ray job submit`;
`clactive label import|simulate` and `clactive status`, which read the run directory and need no Ray.

User errors (config, data, run directory, answers) print one line and exit with code 2, before
Ray starts where they can be known that early.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from dataclasses import replace

from actors.decode import ray_data_map
from actors.faults import HOOK_ENV, check_hook
from pipeline.config.run_config import RunConfig, load_config, validate
from pipeline.data import SOURCES, prepare_data
from pipeline.data.pool import split_files
from pipeline.errors import ClactiveError, RunDirError
from pipeline.labels.answers import import_answers, open_request, simulate_answers
from pipeline.labels.requests import LabelRequests
from pipeline.labels.status import check_continuable, status_lines, waiting_message
from pipeline.loop import interrupts
from pipeline.loop.preflight import preflight
from pipeline.loop.run_store import RunStore
from pipeline.report.progress import make_progress
from pipeline.report.round_table import RoundTable
from pipeline.selection.acquisition import ACQUISITIONS
from pipeline.update.strategies import STRATEGIES

USAGE_ERROR = 2
INTERRUPTED = 130  # the shells' code for a command ended by Ctrl-C (128 + SIGINT)
TERMINATED = 143  # ... and by SIGTERM (128 + 15): `kill`, `ray job stop` (pipeline.loop.interrupts)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["clactive", *(sys.argv[1:] if argv is None else argv)])  # for reports
    sigterm = signal.getsignal(signal.SIGTERM)
    interrupts.reset()
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        how = "terminated (SIGTERM)" if interrupts.terminated() else "interrupted"
        print(
            f"clactive: {how}: the rounds committed so far are kept; the same command continues after "
            "them (for a run: clactive run --resume RUN_DIR)",
            file=sys.stderr,
        )
        return TERMINATED if interrupts.terminated() else INTERRUPTED
    except Exception as exc:
        # An error raised inside a Ray actor arrives wrapped, once per actor it passed through, in a
        # RayTaskError that may also be an instance of the error's own class (its text: a traceback).
        cause: BaseException = exc
        while (inner := getattr(cause, "cause", None)) is not None:
            cause = inner
        if isinstance(cause, ClactiveError):
            print(f"clactive: error: {cause}", file=sys.stderr)
            return USAGE_ERROR
        raise
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)  # a caller's own (the tests') handler is theirs again


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clactive", description="CLActive active learning on Ray")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run(commands)
    _add_label(commands)
    status = commands.add_parser("status", help="rounds done, labels acquired, the open label request")
    status.add_argument("run_dir", metavar="RUN_DIR")
    status.set_defaults(handler=_status)
    _add_compare(commands)
    _add_tune(commands)
    return parser


def _add_run(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run active learning rounds and report each as it completes")
    _config_options(run, "YAML config (default: built-in defaults)", "schedule.rounds=3")
    run.add_argument("--strategy", help=" | ".join(STRATEGIES.names()))
    run.add_argument("--acquisition", help=" | ".join(ACQUISITIONS.names()))
    run.add_argument("--run-dir", help="where the run writes its records (must be new or empty)")
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR after its last completed round, with its own config "
        "(re-running with the same config and --run-dir does the same)",
    )
    run.add_argument(
        "--accept-partial",
        action="store_true",
        help="oracle: external: continue the open round with the labels answered so far",
    )
    run.add_argument("--quiet", action="store_true", help="no live progress line: the round table only")
    run.set_defaults(handler=_run)


def _add_label(commands: argparse._SubParsersAction) -> None:
    label = commands.add_parser("label", help="oracle: external: answer a round's label request")
    actions = label.add_subparsers(dest="action", required=True)
    answers = actions.add_parser(
        "import", help="check answers (CSV or Parquet with columns id,label) against the open request and store them"
    )
    answers.add_argument("run_dir", metavar="RUN_DIR")
    answers.add_argument("file", metavar="FILE")
    answers.set_defaults(handler=_label_import)
    simulate = actions.add_parser(
        "simulate", help="answer the open request from the pool's label column (tests and demos)"
    )
    simulate.add_argument("run_dir", metavar="RUN_DIR")
    simulate.add_argument("--count", type=int, help="answer only this many of the missing ids (default: all)")
    simulate.add_argument("--data-dir", help="directory holding the dataset's files (default: the run's own)")
    simulate.set_defaults(handler=_label_simulate)


def _add_compare(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare",
        help="every strategy side by side: selection time, update time and target accuracy, with speed-ups (resumable)",
    )
    _config_options(
        compare,
        "YAML: a run config plus a `compare:` section (e.g. configs/fashion_mnist_compare.yaml)",
        "compare.strategies=[svp,clactive]",
    )
    compare.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 1%% initial set, two 1%% rounds, short schedules, its own directory",
    )
    compare.add_argument("--quiet", action="store_true", help="no live progress line: the round tables only")
    compare.set_defaults(handler=_compare)


def _add_tune(commands: argparse._SubParsersAction) -> None:
    search = commands.add_parser(
        "tune",
        help="search the replay memory and step budget with Ray Tune: trial table, "
        "accuracy/time Pareto front, best config (resumable)",
    )
    _config_options(
        search, "YAML: a run config plus a `tune:` section (e.g. configs/fashion_mnist_tune.yaml)", "tune.num_samples=4"
    )
    search.set_defaults(handler=_tune)


def _config_options(command: argparse.ArgumentParser, config_help: str, set_example: str) -> None:
    """Where a command's config comes from: a YAML file, the data source, and --set overrides."""
    command.add_argument("--config", help=config_help)
    command.add_argument("--dataset", help=f"the data source: {' | '.join(SOURCES.names())} (default fashion_mnist)")
    command.add_argument("--data-dir", help="directory holding the dataset's files")
    command.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override any config key, e.g. --set {set_example} (repeatable)",
    )
    command.add_argument(
        "--address",
        help="the Ray cluster to join, host:port (default: RAY_ADDRESS when set, "
        "else a Ray started for this run; auto: the cluster `ray start` "
        "started on this machine)",
    )
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
    config = _run_config(args)
    plan = preflight(config, parallel_map=ray_data_map(lambda: connect(args.address, args.verbose)))
    data = plan.data
    if args.accept_partial and config.oracle != "external":
        raise ClactiveError(
            f"--accept-partial continues a round that waits for people's labels, but this run's "
            f"oracle is {config.oracle}: drop --accept-partial"
        )
    action = _check_run_dir(config, args)
    if os.environ.get(HOOK_ENV):
        try:
            check_hook(os.environ[HOOK_ENV])
        except ValueError as exc:
            raise ClactiveError(str(exc)) from None
    connect(args.address, args.verbose)  # an unreachable address fails here, before anything is written
    held_out = f"{data.validation_size} validation, " if data.validation_size else ""
    print(
        f"clactive: {config.strategy} / {config.acquisition} on {data.dataset} "
        f"({data.pool_size} pool, {held_out}{data.sizes['test']} test) -> {config.run_dir} ({action})",
        flush=True,
    )
    from actors.driver import run_rounds  # Ray is imported only when a run starts

    progress = make_progress(plan.num_rounds, args.quiet)
    table = RoundTable(progress.write)
    try:
        result = run_rounds(
            plan, on_record=table.row, on_target=table.target, accept_partial=args.accept_partial, progress=progress
        )
    finally:
        progress.close()
    if result["waiting"] is not None:
        store = RunStore(config.run_dir)
        request = LabelRequests(store).get(result["waiting"]["round"])
        if request is None:
            raise RunDirError(
                f"round {result['waiting']['round']} waits for labels, but its request is missing from "
                f"{config.run_dir}/requests: was it removed? Resume with clactive run --resume {config.run_dir}"
            )
        print(waiting_message(store, request), flush=True)
    return 0


def _run_config(args: argparse.Namespace) -> RunConfig:
    """The run's config: the resumed run's own, or the one the options build."""
    if args.resume:
        if args.config or args.overrides or args.strategy or args.acquisition or args.run_dir or args.dataset:
            raise ClactiveError(
                "--resume continues a run with its own config: drop --config, --set, --strategy, "
                "--acquisition, --dataset and --run-dir"
            )
        config = replace(RunStore.open(args.resume).saved_config(), run_dir=args.resume)
        if args.data_dir:
            config = replace(config, data=replace(config.data, data_dir=args.data_dir))
        validate(config)
    else:
        config = load_config(
            args.config,
            args.overrides,
            strategy=args.strategy,
            acquisition=args.acquisition,
            run_dir=args.run_dir,
            **{"data.dataset": args.dataset, "data.data_dir": args.data_dir},
        )
    return config


def _check_run_dir(config: RunConfig, args: argparse.Namespace) -> str:
    """The banner's "resuming" or "new run"; a ClactiveError for a run directory the run cannot go on in."""
    if RunStore(config.run_dir).holds_run():
        # refuses a different config or a damaged run
        store = RunStore.open(config.run_dir, None if args.resume else config)
        if config.oracle == "external":
            check_continuable(store, args.accept_partial)  # a round waiting for answers it lacks
        return "resuming"
    RunStore.check_new(config.run_dir)  # created once Ray confirmed the resources fit
    return "new run"


if __name__ == "__main__":
    sys.exit(main())
