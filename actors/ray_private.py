"""Every use of a private Ray API, in one place: what it is for, and what happens when a Ray
release moves it. Each one degrades to Ray's own behaviour rather than failing a run."""

from __future__ import annotations

import logging
from collections.abc import Callable


def replace_console_printer(printer: Callable[[dict, bool], None]) -> None:
    """Ray prints the messages its raylets publish on the driver's stdout whatever `log_to_driver`
    says, through `ray._private.worker.print_to_stdstream`; `printer` takes its place. If it moves,
    Ray's lines come back to the console and nothing else changes."""
    import ray._private.worker as ray_worker

    if hasattr(ray_worker, "print_to_stdstream"):
        ray_worker.print_to_stdstream = printer


def quiet_train_report_log() -> None:
    """Ray Train logs every report at INFO under a logger named by its file path, which LoggingConfig
    does not reach; one line per round would bury the round table. If the module moves, the lines
    come back."""
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)
