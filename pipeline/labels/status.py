"""Where a run stands with its labels, as a person reads it: how far the open request is answered,
the next command, the line `clactive run` prints when a round pauses, the refusal to continue a
round that lacks answers, and `clactive status`. No Ray.
"""

from __future__ import annotations

from pipeline.config.run_config import RunConfig
from pipeline.config.schedule import round_count
from pipeline.errors import OracleError
from pipeline.labels.requests import TO_LABEL, LabelRequests, Request
from pipeline.loop.run_store import RunStore


def progress(request: Request, location: str) -> str:
    """How far the request is answered, and the next command."""
    if request.missing == 0:
        return f"all {request.requested} answered: {next_step(request, location)}"
    return (
        f"{request.answered} of {request.requested} answered, {request.missing} missing: {next_step(request, location)}"
    )


def next_step(request: Request, location: str) -> str:
    if request.missing == 0:
        return f"continue with `clactive run --resume {location}`"
    step = f"import answers with `clactive label import {location} FILE`"
    if request.answered:
        step += f", or continue with the answered ids: `clactive run --resume {location} --accept-partial`"
    return step


def waiting_message(store: RunStore, request: Request) -> str:
    """What `clactive run` prints when a round pauses for labels."""
    location = store.location
    requests = LabelRequests(store)
    return (
        f"round {request.round} waits for {request.missing} labels: "
        f"{requests.location_of(request.round, TO_LABEL + '.csv')} "
        f"(ids and the model's hints; images in {TO_LABEL}.parquet)\n"
        f"answer with `clactive label import {location} FILE` (CSV or Parquet with columns id,label), "
        f"then `clactive run --resume {location}`"
    )


def check_continuable(store: RunStore, accept_partial: bool) -> None:
    """Before Ray starts: an open request the run cannot continue yet is a one-line OracleError."""
    request = LabelRequests(store).open()
    if request is None or request.missing == 0:
        return
    location = store.location
    if request.answered == 0:
        raise OracleError(
            f"round {request.round} waits for the {request.requested} labels it asked for and none is "
            f"answered yet: label {LabelRequests(store).location_of(request.round, TO_LABEL + '.csv')} "
            f"and import it with `clactive label import {location} FILE`"
        )
    if not accept_partial:
        raise OracleError(
            f"round {request.round} waits for {request.missing} of its {request.requested} labels: "
            f"import them with `clactive label import {location} FILE`, or continue with the "
            f"{request.answered} answered: `clactive run --resume {location} --accept-partial`"
        )


def status_lines(store: RunStore) -> list[str]:
    """`clactive status`: rounds done, labels acquired, the open request and what it still needs."""
    config: RunConfig = store.saved_config()
    location = store.location
    records = store.records()
    total = round_count(config.schedule)
    lines = [
        f"run {location}: {config.strategy} / {config.acquisition}, oracle {config.oracle}, seed {config.seed}",
        f"rounds done: {len(records)} of {total}; labels acquired: {records[-1]['labelled'] if records else 0}",
    ]
    for record in records:
        if "requested" in record and record["answered"] < record["requested"]:
            lines.append(
                f"  round {record['round']} continued with {record['answered']} of its "
                f"{record['requested']} requested labels"
            )
    requests = LabelRequests(store)
    request = requests.open()
    if request is not None:
        lines.append(
            f"open request: round {request.round} asks for {request.requested} labels: "
            f"{request.answered} answered, {request.missing} missing"
        )
        lines.append(
            f"  to label: {requests.location_of(request.round, TO_LABEL + '.csv')} (images in {TO_LABEL}.parquet)"
        )
        lines.append(f"  next: {next_step(request, location)}")
    elif len(records) < total:
        lines.append(
            f"no open request; next: `clactive run --resume {location}`"
            + (f" asks for the labels of round {len(records)}" if config.oracle == "external" else "")
        )
    else:
        target = store.read_json(f"targets/{total - 1:04d}.json")
        lines.append(
            "finished"
            + (
                f": target {target['target']} on {target['labelled']} labels, test accuracy {target['target_acc']:.4f}"
                if target
                else ""
            )
        )
    return lines
