"""The live progress line a run shows while a round works: the round, the stage (scoring / update /
target fit), the examples or steps done, the rate, and how long the stage and the whole run have left.

The driver feeds it absolute counts it polls from the actors (actors.progress); this module only
draws them and estimates the time left, so it has no Ray and no torch and runs on a fake clock.

    terminal   one tqdm bar, redrawn in place, erased when its stage gives way to the next; the round
               table's rows go through `write`, which lifts the bar, prints the row and redraws it
    piped      (`ray job submit` logs, CI, `2> file`): no tqdm and no carriage returns, a plain line at
               most every `interval_s` per stage and one when the stage ends; a stage that ends within
               `interval_s` prints only that last line
    --quiet    NullProgress: only the table's rows

The run's time left assumes flat rounds: the rounds still to run times the mean seconds of the rounds
this process completed, less what the current round has already spent (and never less than its
running stage has left). Flat is what CLActive promises, an update of constant cost per round; a
strategy that retrains from scratch on a growing labelled set has rounds that grow, and its estimate
runs low. The target fit after the last round is not counted until its stage is running: there is no
time for it before it starts, and while it runs the run has what the fit has left.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TextIO

from tqdm import tqdm

UNSIZED_COLUMNS, UNSIZED_ROWS = 120, 24  # the bar's screen on a terminal that reports no size


@dataclass
class _Stage:
    """The stage the latest count belongs to, timed from the first count seen for it."""

    round_index: int
    name: str
    unit: str
    total: int | None
    started: float  # clock at the first count seen (the stage may have begun up to a poll earlier)
    first_done: int  # the count then: the rate is of what was done while we watched
    done: int
    last_line: float  # clock of the last plain line (starts at `started`: the first comes `interval_s` in)
    ended: bool = False  # its last line is printed

    def rate(self, now: float) -> float | None:
        """Units a second since the first count, or None before any time passed or any unit was done."""
        elapsed = now - self.started
        done = self.done - self.first_done
        return done / elapsed if elapsed > 0 and done > 0 else None

    def remaining(self, now: float) -> float | None:
        """Seconds the stage has left at its mean rate so far (None: no total or no rate yet)."""
        rate = self.rate(now)
        if self.total is None or rate is None:
            return None
        return max(self.total - self.done, 0) / rate


class RunProgress(Protocol):
    """What the driver feeds a run's counts to and the round table writes through: Progress or NullProgress."""

    def update(self, round_index: int, stage: str, done: int, total: int | None, unit: str) -> None: ...

    def round_done(self, round_index: int, seconds: float) -> None: ...

    def write(self, line: str) -> None: ...

    def close(self) -> None: ...


class Progress:
    """One live line for a run of `num_rounds` rounds (indices 0 .. num_rounds - 1, as in the table).

    `stream`: where the line goes (default sys.stderr, so `> file` keeps only the table); `out`: where
    `write` prints the table's rows (None: sys.stdout when writing, where RoundTable prints).
    `interactive`: draw a tqdm bar in place (None: if `stream` is a terminal). `clock`: seconds, for
    the piped lines' rates and both ETAs (tqdm keeps its own clock for the bar's rate and remaining).
    """

    def __init__(
        self,
        num_rounds: int,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        out: TextIO | None = None,
    ):
        self.num_rounds = num_rounds
        self.stream = sys.stderr if stream is None else stream
        self.interactive = _is_terminal(self.stream) if interactive is None else interactive
        self.interval_s = interval_s
        self.clock = clock
        self.out = out
        self.stage: _Stage | None = None
        self.bar: tqdm | None = None
        self.round_seconds: list[float] = []  # of the rounds completed in this process
        self.last_round_done: int | None = None
        self.round_started: float | None = None  # clock when the current round began, as far as we saw

    def update(self, round_index: int, stage: str, done: int, total: int | None, unit: str) -> None:
        """`done` of `total` `unit`s (examples, steps) of `stage` in round `round_index`, an absolute count.

        A new (round, stage) starts a new bar; so does a count that went back, a pass Ray redid after a
        scorer died, whose rate and ETA would otherwise count the lost work as done."""
        now = self.clock()
        s = self.stage
        if s is None or (s.round_index, s.name) != (round_index, stage) or done < s.done:
            if s is not None and (s.round_index, s.name) != (round_index, stage):
                self._finish(s, now)
            if s is None or s.round_index != round_index:
                # A round began when round_done committed the one before it; the first round this process
                # sees began, as far as it knows, at its first count.
                if self.last_round_done != round_index - 1:
                    self.round_started = now
            s = self._start(round_index, stage, done, total, unit, now)
        s.done, s.total = done, total
        bar = self.bar  # drawn by _start for this stage when interactive
        if self.interactive and bar is not None:
            run_left = self.run_remaining()
            if run_left is not None:
                bar.set_postfix_str(f"run ~{duration(run_left)} left", refresh=False)
            bar.total = total
            bar.update(done - bar.n)  # tqdm counts increments; ours are absolute
            return
        ended = total is not None and done >= total
        if ended and not s.ended:
            s.ended = True
            self._line(self.line(now))
        elif not ended and now - s.last_line >= self.interval_s:
            s.last_line = now
            self._line(self.line(now))

    def _finish(self, s: _Stage, now: float) -> None:
        """A stage that gave way to the next one is done, though the last poll may have caught it short
        of its total: piped, its end line is still printed, with its total as its count."""
        if self.interactive or s.ended:
            return
        if s.total is not None:
            s.done = s.total
        s.ended = True
        self._line(self.line(now))

    def round_done(self, round_index: int, seconds: float) -> None:
        """Round `round_index` is committed after `seconds` of work (its record's time, people's wait excluded)."""
        self.round_seconds.append(seconds)
        self.last_round_done = round_index if self.last_round_done is None else max(self.last_round_done, round_index)
        self.round_started = self.clock()  # the next round starts now

    def run_remaining(self) -> float | None:
        """Seconds the run has left (module docstring), or None before the first round_done or any count."""
        s, last_done, round_started = self.stage, self.last_round_done, self.round_started
        # round_done sets last_round_done and round_started with the first of round_seconds
        if not self.round_seconds or s is None or last_done is None or round_started is None:
            return None
        now = self.clock()
        mean = sum(self.round_seconds) / len(self.round_seconds)
        finished = max(last_done, s.round_index - 1)  # a resumed run finished the earlier rounds
        left = (self.num_rounds - 1 - finished) * mean
        if s.round_index > last_done:  # the current round is running: part of its mean is spent
            left -= now - round_started
        return max(left, s.remaining(now) or 0.0, 0.0)

    def line(self, now: float | None = None) -> str:
        """The piped line for the current stage, e.g. 'round 3/5 scoring: 12,000/58,800 examples,
        812/s, stage ~1m00s left, run ~4m10s left'."""
        s = self.stage
        if s is None:  # no stage has counted yet
            return ""
        now = self.clock() if now is None else now
        count = f"{s.done:,}" if s.total is None else f"{s.done:,}/{s.total:,}"
        parts = [f"{self.describe(s)}: {count} {s.unit}"]
        rate = s.rate(now)
        if rate is not None:
            parts.append(f"{rate_text(rate)}/s")
        stage_left = s.remaining(now)
        if s.ended:
            parts.append(f"stage done in {duration(now - s.started)}")
        elif stage_left is not None:
            parts.append(f"stage ~{duration(stage_left)} left")
        run_left = self.run_remaining()
        if run_left is not None:
            parts.append(f"run ~{duration(run_left)} left")
        return ", ".join(parts)

    def describe(self, s: _Stage) -> str:
        # The last index, not the count: the table numbers rounds from 0, and its last row is num_rounds - 1.
        return f"round {s.round_index}/{self.num_rounds - 1} {s.name}"

    def write(self, line: str) -> None:
        """Print `line` (a table row) without breaking the bar: tqdm lifts it, prints, and redraws it."""
        out = sys.stdout if self.out is None else self.out
        if self.interactive:
            tqdm.write(line, file=out)
        else:
            print(line, file=out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _start(self, round_index: int, stage: str, done: int, total: int | None, unit: str, now: float) -> _Stage:
        """A new stage, now the current one, with its bar when interactive."""
        self.close()
        current = _Stage(round_index, stage, unit, total, started=now, first_done=done, done=done, last_line=now)
        self.stage = current
        if self.interactive:
            counts = "{n:,}" if total is None else "{n:,}/{total:,}"
            bar = "" if total is None else "{percentage:3.0f}%|{bar}| "
            remaining = "" if total is None else "<{remaining}"
            # smoothing=0: the mean rate since the stage began; counts polled once a second come in
            # lumps that make tqdm's moving average (and its ETA) jump.
            run_left = self.run_remaining()
            # A terminal nobody gave a size (a pty under `script` or a CI runner's) reports 0 columns and 0
            # rows, which tqdm takes for a screen too small to draw on: it prints nothing. Such a
            # terminal gets a fixed size instead.
            sized = _is_sized(self.stream)
            self.bar = tqdm(
                total=total,
                initial=done,
                file=self.stream,
                desc=self.describe(current),
                unit=f" {unit}",
                leave=False,
                dynamic_ncols=sized,
                ncols=None if sized else UNSIZED_COLUMNS,
                nrows=None if sized else UNSIZED_ROWS,
                smoothing=0,
                postfix=None if run_left is None else f"run ~{duration(run_left)} left",
                bar_format=f"{{desc}}: {bar}{counts}{{unit}} [{{elapsed}}{remaining}, {{rate_fmt}}{{postfix}}]",
            )
        return current

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


class NullProgress:
    """--quiet: no progress at all; `write` prints the table's rows plainly (to `out`, default sys.stdout)."""

    def __init__(
        self,
        num_rounds: int = 0,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        out: TextIO | None = None,
    ):
        self.out = out

    def update(self, round_index: int, stage: str, done: int, total: int | None, unit: str) -> None:
        pass

    def round_done(self, round_index: int, seconds: float) -> None:
        pass

    def write(self, line: str) -> None:
        print(line, file=sys.stdout if self.out is None else self.out, flush=True)

    def close(self) -> None:
        pass


def make_progress(num_rounds: int, quiet: bool) -> Progress | NullProgress:
    """A run's progress on stderr (the table stays on stdout), or none with --quiet."""
    return NullProgress(num_rounds) if quiet else Progress(num_rounds)


def duration(seconds: float) -> str:
    """'45s', '4m10s', '2h05m': rounded to what a person plans with."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def rate_text(rate: float) -> str:
    """'812', '45.3', '2.50': three significant figures or so, so slow steps still show a rate."""
    if rate >= 100:
        return f"{rate:,.0f}"
    return f"{rate:.1f}" if rate >= 10 else f"{rate:.2f}"


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _is_sized(stream: TextIO) -> bool:
    """False for a terminal that reports no size; True for a sized one and for a stream that is no
    terminal (a test's buffer), which tqdm draws at any width."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return True
    return size.columns > 0 and size.lines > 0
