"""SIGTERM (`kill`, `ray job stop`) ends a run as Ctrl-C does, whatever handler Ray installed in
between: one line, the shells' exit code, and the caller's own handler back afterwards."""
import os
import signal
import sys
import time

import pytest

import pipeline.cli as cli


def ray_like_connect(address, verbose):
    """What ray.init does to SIGTERM: its own handler, raising SystemExit."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))


@pytest.fixture
def run_until_terminated(monkeypatch):
    monkeypatch.setattr("actors.cluster.connect", ray_like_connect)

    def run(args):
        cli.connect(None, False)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # a round at work: the signal lands during it
        raise AssertionError("SIGTERM did not end the run")

    monkeypatch.setattr(cli, "_run", run)


def test_sigterm_during_a_run_is_one_line_exit_143_and_the_callers_handler_is_restored(run_until_terminated,
                                                                                        capsys):
    received = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        started = time.monotonic()
        assert cli.main(["run"]) == cli.TERMINATED == 143
        assert time.monotonic() - started < 5
        err = capsys.readouterr().err
        assert err.splitlines() == ["clactive: terminated (SIGTERM): the rounds committed so far are kept; the same "
                                    "command continues after them (for a run: clactive run --resume RUN_DIR)"]
        os.kill(os.getpid(), signal.SIGTERM)  # the test's own handler again, not the run's
        assert received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)
