"""The progress line on a fake clock: what a piped log gets and when, the numbers it shows, the run's
time left, the terminal bar, and --quiet."""

import fcntl
import io
import os
import select
import struct
import termios

import pytest

from pipeline.report.progress import UNSIZED_COLUMNS, NullProgress, Progress, duration


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock():
    return FakeClock()


def piped(clock, num_rounds=6, interval_s=30.0):
    buf = io.StringIO()
    return Progress(num_rounds, stream=buf, out=buf, interactive=False, interval_s=interval_s, clock=clock), buf


def lines(buf):
    return buf.getvalue().splitlines()


def test_a_stream_that_is_not_a_terminal_gets_plain_lines():
    assert Progress(6, stream=io.StringIO()).interactive is False


def test_piped_prints_a_line_every_interval_and_one_at_stage_end_without_carriage_returns(clock):
    p, buf = piped(clock)
    for second in range(101):  # polled once a second: 100 examples a second, 10,000 in all
        p.update(3, "scoring", 100 * second, 10_000, "examples")
        clock.t += 1
    p.update(3, "scoring", 10_000, 10_000, "examples")  # the same end polled again prints nothing
    printed = lines(buf)
    assert [line.split(": ")[1].split(" ")[0] for line in printed] == [
        "3,000/10,000",
        "6,000/10,000",
        "9,000/10,000",
        "10,000/10,000",
    ]
    assert "\r" not in buf.getvalue()


def test_updates_faster_than_the_interval_print_nothing_until_the_stage_ends(clock):
    p, buf = piped(clock)
    for step in range(0, 250, 10):  # 25 polls over 24.9 s, under the 30 s interval
        p.update(1, "update", step, 250, "steps")
        clock.t += 1
    assert buf.getvalue() == ""
    p.update(1, "update", 250, 250, "steps")
    assert lines(buf) == ["round 1/5 update: 250/250 steps, 10.0/s, stage done in 25s"]


def test_a_stage_the_last_poll_caught_short_of_its_total_still_gets_its_end_line(clock):
    p, buf = piped(clock)
    for step in range(0, 200, 20):  # 10 polls over 9 s; the stage ends between two polls
        p.update(1, "scoring", step, 200, "examples")
        clock.t += 1
    p.update(1, "update", 3, 50, "steps")  # the next stage began: the scoring stage is done
    assert lines(buf) == ["round 1/5 scoring: 200/200 examples, 20.0/s, stage done in 10s"]


def test_piped_line_carries_round_stage_counts_rate_and_stage_time_left(clock):
    p, buf = piped(clock)
    p.update(3, "scoring", 0, 58_800, "examples")
    clock.t += 15
    p.update(3, "scoring", 12_180, 58_800, "examples")  # 812 a second
    assert buf.getvalue() == ""
    clock.t += 15
    p.update(3, "scoring", 24_360, 58_800, "examples")
    # 34,440 left at 812/s is 42.4 s
    assert lines(buf) == ["round 3/5 scoring: 24,360/58,800 examples, 812/s, stage ~42s left"]


def test_rate_is_of_what_was_done_while_watched(clock):
    p, buf = piped(clock, interval_s=10)
    p.update(0, "update", 400, 1000, "steps")  # first seen with 400 done: not 400 steps in 0 s
    clock.t += 10
    p.update(0, "update", 500, 1000, "steps")
    assert lines(buf) == ["round 0/5 update: 500/1,000 steps, 10.0/s, stage ~50s left"]


def test_a_stage_without_a_total_shows_its_count_and_rate_only(clock):
    p, buf = piped(clock, interval_s=10)
    p.update(0, "update", 0, None, "steps")
    clock.t += 10
    p.update(0, "update", 25, None, "steps")
    assert lines(buf) == ["round 0/5 update: 25 steps, 2.50/s"]


def test_no_run_time_left_before_a_round_completes(clock):
    p, buf = piped(clock)
    p.update(0, "update", 0, 100, "steps")
    clock.t += 30
    p.update(0, "update", 50, 100, "steps")
    assert p.run_remaining() is None
    assert "run" not in buf.getvalue()


def test_run_time_left_is_rounds_left_times_mean_round_less_the_current_rounds_elapsed(clock):
    p, buf = piped(clock)
    p.update(0, "update", 0, 100, "steps")
    clock.t += 100
    p.round_done(0, 100.0)
    p.update(1, "scoring", 0, 1000, "examples")
    clock.t += 200
    p.round_done(1, 200.0)  # mean 150 s a round
    p.update(2, "scoring", 0, 60_000, "examples")
    clock.t += 60
    p.update(2, "scoring", 60_000, 60_000, "examples")
    # rounds 2..5 left: 4 x 150 s = 600 s, less the 60 s round 2 has spent
    assert p.run_remaining() == pytest.approx(540.0)
    assert lines(buf)[-1] == "round 2/5 scoring: 60,000/60,000 examples, 1,000/s, stage done in 1m00s, run ~9m00s left"


def test_run_time_left_is_never_less_than_the_running_stage_has_left(clock):
    p, _ = piped(clock, num_rounds=2)
    p.update(0, "update", 0, 100, "steps")
    clock.t += 10
    p.round_done(0, 10.0)
    p.update(1, "update", 0, 1000, "steps")
    clock.t += 20
    p.update(1, "update", 100, 1000, "steps")  # 5 steps/s: 180 s left, though the mean round is 10 s
    assert p.run_remaining() == pytest.approx(180.0)


def test_a_target_fit_after_the_last_round_has_the_run_end_with_it(clock):
    p, buf = piped(clock, num_rounds=2, interval_s=10)
    for r in range(2):
        p.update(r, "update", 0, 10, "steps")
        clock.t += 50
        p.round_done(r, 50.0)
    p.update(1, "target fit", 0, 400, "steps")  # the fit on round 1's labels, after round 1 committed
    clock.t += 10
    p.update(1, "target fit", 100, 400, "steps")
    assert p.run_remaining() == pytest.approx(30.0)  # what the fit has left, no round
    assert lines(buf)[-1] == "round 1/1 target fit: 100/400 steps, 10.0/s, stage ~30s left, run ~30s left"


def test_a_resumed_run_counts_the_rounds_before_its_first_as_done(clock):
    p, _ = piped(clock, num_rounds=10)
    p.update(7, "update", 0, 10, "steps")  # resumed at round 7
    clock.t += 40
    p.round_done(7, 40.0)
    p.update(8, "scoring", 0, 100, "examples")
    assert p.run_remaining() == pytest.approx(80.0)  # rounds 8 and 9


def test_a_count_that_goes_back_restarts_the_stage(clock):
    p, buf = piped(clock, interval_s=10)
    p.update(4, "scoring", 0, 1000, "examples")
    clock.t += 5
    p.update(4, "scoring", 600, 1000, "examples")
    p.update(4, "scoring", 0, 1000, "examples")  # a scorer died; Ray redid the pass
    clock.t += 10
    p.update(4, "scoring", 200, 1000, "examples")
    assert lines(buf) == ["round 4/5 scoring: 200/1,000 examples, 20.0/s, stage ~40s left"]


def test_interactive_draws_a_tqdm_bar_and_writes_rows_intact(clock):
    buf = io.StringIO()
    p = Progress(6, stream=buf, out=buf, interactive=True, clock=clock)
    p.update(0, "update", 0, 100, "steps")
    clock.t += 50
    p.round_done(0, 50.0)
    row = "    0       100       100     0.0      0.00     50.0     100     1.0         0.5  0.4100"
    p.write(row)
    p.update(1, "scoring", 0, 58_800, "examples")
    clock.t += 10
    p.update(1, "scoring", 29_400, 58_800, "examples")
    p.write("    1 (the next row)")
    p.close()
    out = buf.getvalue()
    assert "\r" in out  # redrawn in place
    assert "round 0/5 update:" in out and "0/100 steps" in out
    assert "round 1/5 scoring:" in out and "/58,800 examples" in out
    assert "run ~4m10s left" in out  # drawn with the bar: rounds 1..5 x 50 s
    assert "run ~4m00s left" in out  # less the 10 s round 1 has spent (tqdm's own clock draws the rate)
    assert f"\r{row}\n" in out  # the bar is lifted before the row, so the row is whole on its own line
    assert "\r    1 (the next row)\n" in out


def _bar_on_a_pty(clock, columns: int, rows: int) -> str:
    """What a bar draws on a real pseudo-terminal of `columns` x `rows` (0 x 0: a pty nobody sized, as
    under `script` without a terminal or on some CI runners)."""
    reader, writer = os.openpty()
    fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    stream = os.fdopen(writer, "w")
    try:
        p = Progress(6, stream=stream, out=io.StringIO(), clock=clock)
        assert p.interactive
        p.update(0, "scoring", 250, 1000, "examples")
        stream.flush()
        readable, _, _ = select.select([reader], [], [], 5)
        return os.read(reader, 65536).decode() if readable else ""
    finally:
        p.close()
        stream.close()
        os.close(reader)


@pytest.mark.parametrize("columns, rows", [(0, 0), (120, 40)])
def test_a_terminal_draws_the_bar_even_when_it_reports_no_size(clock, columns, rows):
    drawn = _bar_on_a_pty(clock, columns, rows)
    assert "round 0/5 scoring:" in drawn and "250/1,000 examples" in drawn
    widest = max(len(part) for part in drawn.replace("\n", "\r").split("\r"))
    assert widest <= (columns or UNSIZED_COLUMNS)


def test_quiet_prints_only_the_rows():
    buf = io.StringIO()
    p = NullProgress(6, stream=buf, out=buf)
    p.update(0, "update", 50, 100, "steps")
    p.round_done(0, 10.0)
    p.update(1, "scoring", 100, 100, "examples")
    p.write("    0  row")
    p.close()
    assert buf.getvalue() == "    0  row\n"


@pytest.mark.parametrize(
    "seconds, text", [(0.4, "0s"), (59.4, "59s"), (60, "1m00s"), (250, "4m10s"), (3599, "59m59s"), (7500, "2h05m")]
)
def test_durations_read_as_a_person_plans(seconds, text):
    assert duration(seconds) == text
