"""SIGTERM (`kill`, `ray job stop`) ends a run as Ctrl-C does, whatever handler Ray installed before:
one line, the shells' exit code, and the caller's own handler back afterwards."""

import os
import signal
import sys
import time

import pytest

import actors.cluster
import pipeline.cli as cli


def ray_like_init(*args, **kwargs):
    """What ray.init does to SIGTERM: its own handler, raising SystemExit."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))


@pytest.fixture
def run_until_terminated(monkeypatch):
    """`clactive run` as far as connecting to Ray (a fake ray.init), then a round at work that SIGTERM
    ends; Ray hands an interrupt that lands inside its calls on as a plain KeyboardInterrupt."""
    monkeypatch.setattr(actors.cluster, "_start_local", ray_like_init)
    monkeypatch.setattr("ray.is_initialized", lambda: False)

    def run(args):
        actors.cluster.connect(None, False)
        os.kill(os.getpid(), signal.SIGTERM)
        try:
            time.sleep(10)  # the signal lands during it
        except KeyboardInterrupt:
            raise KeyboardInterrupt from None  # as Ray's ray.get re-raises it
        raise AssertionError("SIGTERM did not end the run")

    monkeypatch.setattr(cli, "_run", run)


def test_sigterm_during_a_run_is_one_line_exit_143_and_the_callers_handler_is_restored(run_until_terminated, capsys):
    received = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        started = time.monotonic()
        assert cli.main(["run"]) == cli.TERMINATED == 143
        assert time.monotonic() - started < 5
        err = capsys.readouterr().err
        assert err.splitlines() == [
            "clactive: terminated (SIGTERM): the rounds committed so far are kept; the same "
            "command continues after them (for a run: clactive run --resume RUN_DIR)"
        ]
        os.kill(os.getpid(), signal.SIGTERM)  # the test's own handler again, not the run's
        assert received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)


def test_ctrl_c_after_a_sigterm_run_is_an_interrupt_again(monkeypatch, capsys):
    def run(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run", run)
    from pipeline.loop import interrupts

    monkeypatch.setattr(interrupts, "_terminated", True)  # left over from an earlier run in this process
    assert cli.main(["run"]) == cli.INTERRUPTED
    assert capsys.readouterr().err.startswith("clactive: interrupted: ")
