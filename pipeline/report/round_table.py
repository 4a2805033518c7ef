"""What a run prints as it goes: one table row per round, notes under a row for what Ray recovered
from inside the round (in clactive's words, not Ray's logs), and the target's line. No Ray."""

from __future__ import annotations

from collections.abc import Callable

COLUMNS = [
    ("round", 5, "{:d}"),
    ("labelled", 8, "{:d}"),
    ("acquired", 8, "{:d}"),
    ("score s", 7, "{:.1f}"),
    ("select s", 8, "{:.2f}"),
    ("train s", 7, "{:.1f}"),
    ("steps", 6, "{:d}"),
    ("eval s", 6, "{:.1f}"),
    ("overhead s", 10, "{:.1f}"),
    ("acc", 6, "{:.4f}"),
]
NOTE_INDENT = " " * 7


class RoundTable:
    """Prints the header before the first row, so a run that pauses before its first round prints no table.
    `write` prints a line (a live progress line's write keeps the bar below the table)."""

    def __init__(self, write: Callable[[str], None] | None = None):
        self.write = write or (lambda line: print(line, flush=True))
        self.started = False

    def row(self, record: dict) -> None:
        if not self.started:
            self.write("  ".join(f"{name:>{width}}" for name, width, _ in COLUMNS))
            self.started = True
        self.write(format_row(record))
        for note in recovered(record):
            self.write(NOTE_INDENT + note)
        if "stopped" in record:
            self.write(stopped_line(record))

    def target(self, fit: dict) -> None:
        self.write(
            f"target {fit['target']} trained from scratch on {fit['labelled']} labels: "
            f"test accuracy {fit['target_acc']:.4f}"
            + (f", validation {fit['target_val_acc']:.4f}" if fit.get("target_val_acc") is not None else "")
            + f" ({fit['seconds']['train']:.1f} s)"
        )


def format_row(record: dict) -> str:
    s = record["seconds"]
    values = [
        record["round"],
        record["labelled"],
        record["acquired"],
        s["score"],
        s["select"],
        s["train"],
        record["steps"],
        s["eval"],
        s["learner_overhead"],
        record["selection_acc"],
    ]
    return "  ".join(f"{fmt.format(v):>{width}}" for (_, width, fmt), v in zip(COLUMNS, values))


def stopped_line(record: dict) -> str:
    """A round after which a stopping criterion ended the run (a resumed run prints it again: it is finished)."""
    stop = record["stopped"]
    return (
        f"{NOTE_INDENT}stopped after round {record['round']} by {stop['criterion']}: {stop['reason']}; "
        "the run is finished"
    )


def recovered(record: dict) -> list[str]:
    """What a round recovered from (its record says), in clactive's words rather than Ray's logs."""
    notes = []
    if record.get("coordinator_restarted"):
        notes.append("the coordinator died in this round; Ray restarted it and the round was redone from its start")
    if record.get("redone_passes"):
        notes.append(
            f"a scoring actor died; Ray restarted it and the scoring pass was redone "
            f"({record['redone_passes']} time(s))"
        )
    return notes
