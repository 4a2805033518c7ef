"""A test hook for crash-and-resume tests: stop at a named point of a round and wait to be killed.

`pause_at` is "<round>:<stage>": `score` (during the scoring pass, after its first batch),
`label` (labels acquired, the round not committed), `train` (inside the learner, as the
update starts). When a run reaches that point
it drops a marker file in the run directory and sleeps, so a test can SIGKILL the run there.
It does nothing unless the CLI was started with CLACTIVE_TEST_PAUSE_AT set.
"""
from __future__ import annotations

import time
from pathlib import Path

PAUSE_ENV = "CLACTIVE_TEST_PAUSE_AT"


def pause_point(pause_at: str | None, run_dir: Path, round_index: int, stage: str) -> None:
    if pause_at == f"{round_index}:{stage}":
        Path(run_dir, f".paused-{round_index}-{stage}").touch()
        time.sleep(3600)
