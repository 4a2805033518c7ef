"""A newcomer's two commands, timed: `git clone` of this checkout's HEAD into a temporary directory,
then `make test` (which creates .venv and runs the linters and the whole suite) and `make run` in it,
each timed on the wall clock. The run is appended to benchmarks/results/make_timings.json, and
`python -m benchmarks.figures` puts it into benchmarks/README.md. Imports neither torch nor Ray:
everything it measures runs in the clone's own processes.

    python3 -m benchmarks.fresh_clone [--note TEXT] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIMINGS = REPO / "benchmarks" / "results" / "make_timings.json"
# pytest's last line: "539 passed, 2 skipped, 1 warning in 558.20s (0:09:18)"
SUMMARY = re.compile(r"(\d+) passed.* in ([\d.]+)s")


def timed(command: list[str], cwd: Path, log: Path) -> tuple[int, float]:
    """(exit status, wall seconds) of `command`, its output kept in `log`."""
    start = time.perf_counter()
    with log.open("w") as out:
        status = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT).returncode
    return status, time.perf_counter() - start


def machine() -> str:
    memory = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return f"{os.cpu_count()} cores, {int(memory.split()[1]) / 2**20:.0f} GiB RAM"


def measure(workdir: Path, note: str) -> list[dict]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    clone = workdir / "clactive"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    runs = []
    for command, venv in (("make test", "created"), ("make run", "existing")):
        log = workdir / (command.replace(" ", "_") + ".log")
        status, wall_s = timed(command.split(), clone, log)
        run = {
            "date": date.today().isoformat(),
            "command": command,
            "venv": venv,
            "wall_s": round(wall_s),
            "commit": commit.stdout.strip(),
            "machine": machine(),
            "exit": status,
        }
        found = SUMMARY.findall(log.read_text()) if command == "make test" else []
        if found:
            run.update(tests=int(found[-1][0]), pytest_s=round(float(found[-1][1])))
        if note:
            run["note"] = note
        runs.append(run)
        print(f"{command}: exit {status}, {wall_s / 60:.1f} min" + (f", {run['tests']} passed" if found else ""))
        if status != 0:
            print(f"  its output: {log}", file=sys.stderr)
            break
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--note", default="", help="a word on the sitting, kept with the runs")
    parser.add_argument("--keep", action="store_true", help="keep the clone and its logs")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="clactive-fresh-"))
    try:
        runs = measure(workdir, args.note)
    finally:
        if args.keep:
            print(f"clone and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    timings = json.loads(TIMINGS.read_text())
    timings["runs"] += runs
    TIMINGS.write_text(json.dumps(timings, indent=1) + "\n")
    if any(run["exit"] != 0 for run in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
