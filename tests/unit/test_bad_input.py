"""Everything a user supplies, done wrong: one line naming the cause, exit code 2, nothing written.

Each case starts from a valid tiny setup (generated Fashion-MNIST-layout data, a fresh run
directory), breaks one thing, and calls the CLI in-process. Every case must be refused before
Ray starts: reaching `run_rounds` fails the test.
"""

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

import actors.driver
import pipeline.cli
from pipeline.config.run_config import load_config
from pipeline.loop.run_store import RunStore
from tests.helpers import IDX_NAMES, idx_bytes, tiny_overrides, write_fashion_like

POOL_IMAGES, POOL_LABELS = IDX_NAMES["pool"]
TEST_IMAGES, TEST_LABELS = IDX_NAMES["test"]


def rewrite_idx(path: Path, change) -> None:
    raw = bytearray(gzip.decompress(path.read_bytes()))
    path.write_bytes(gzip.compress(bytes(change(raw))))


def set_byte(offset: int, value: int):
    def change(raw):
        raw[offset] = value
        return raw

    return change


def write_file(relative: str, text: str):
    def setup(case):
        path = case.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    return setup


def damage(change):
    return lambda case: change(case.data_dir)


def saved_run(*extra_sets):
    """A run directory holding a saved run (config only, or config plus committed round 0)."""

    def setup(case):
        RunStore.create(case.run_dir, load_config(None, tiny_overrides(case.data_dir, case.root) + list(extra_sets)))

    return setup


def broken_round(case):
    store = RunStore.create(case.run_dir, load_config(None, tiny_overrides(case.data_dir, case.root)))
    writer = store.begin_round(0)
    writer.labels(np.array([3]), np.array([1]))
    writer.state({}, {}, b"weights")
    writer.commit({"round": 0})
    (case.run_dir / "rounds" / "0000" / "checkpoint.pt").unlink()


class Case:
    def __init__(self, root: Path, data_dir: Path):
        self.root, self.data_dir, self.run_dir = root, data_dir, root / "run"


# (name, setup(case) or None, extra CLI arguments, the cause the message must name)
CASES = [
    # config file and overrides
    ("missing config file", None, ["--config", "no/such.yaml"], "config file no/such.yaml does not exist"),
    (
        "config not YAML",
        write_file("bad.yaml", "strategy: [clactive\n"),
        ["--config", "{root}/bad.yaml"],
        "is not valid YAML",
    ),
    (
        "config not a mapping",
        write_file("list.yaml", "- 1\n- 2\n"),
        ["--config", "{root}/list.yaml"],
        "must hold a mapping of keys to values, not list",
    ),
    (
        "unknown top-level key",
        write_file("typo.yaml", "stratgy: svp\n"),
        ["--config", "{root}/typo.yaml"],
        "unknown config key 'stratgy'",
    ),
    ("unknown nested key", None, ["--set", "memory.size=100"], "unknown config key 'memory.size'"),
    ("section given a value", None, ["--set", "memory=3"], "'memory' must be a section of keys"),
    ("override without =", None, ["--set", "seed"], "override 'seed' is not key=value"),
    ("override under a value", None, ["--set", "run_dir.x=1"], "cannot set 'run_dir.x': 'run_dir' is a value"),
    ("wrong type", None, ["--set", "update.steps=many"], "'update.steps' = 'many' has the wrong type"),
    ("bool for an int", None, ["--set", "seed=true"], "'seed' = True has the wrong type"),
    ("zero steps", None, ["--set", "update.steps=0"], "update.steps = 0 must be positive"),
    ("negative memory ratio", None, ["--set", "memory.ratio=-0.5"], "memory.ratio = -0.5 is negative"),
    ("negative memory count", None, ["--set", "memory.count=-3"], "memory.count = -3 is negative"),
    ("fraction above 1", None, ["--set", "schedule.initial=1.5"], "schedule.initial = 1.5: a fraction must lie in"),
    ("empty round list", None, ["--set", "schedule.round_ends=[]"], "'schedule.round_ends' must be a non-empty list"),
    (
        "rounds not increasing",
        None,
        ["--set", "schedule.round_ends=[90, 80]"],
        "schedule round 2 ends at 80 labels, not above 90",
    ),
    (
        "round_size without rounds",
        None,
        ["--set", "schedule.round_size=10"],
        "schedule.round_size and schedule.rounds go together",
    ),
    (
        "budget above the pool",
        None,
        ["--set", "schedule.round_ends=[100, 900]"],
        "asks for 900 labels in total but the pool holds 400",
    ),
    (
        "initial set above the pool",
        None,
        ["--set", "schedule.initial=500", "--set", "schedule.round_ends=[600]"],
        "schedule.initial asks for 500 labels but the pool holds 400",
    ),
    ("unknown strategy", None, ["--strategy", "coreset"], "unknown strategy 'coreset': choose one of"),
    ("unknown acquisition", None, ["--acquisition", "bald"], "unknown acquisition 'bald'"),
    ("unknown oracle", None, ["--set", "oracle=crowd"], "unknown oracle 'crowd': choose one of simulated, external"),
    ("accept partial answers without people", None, ["--accept-partial"], "oracle is simulated: drop --accept-partial"),
    ("unknown memory policy", None, ["--set", "memory.policy=fifo"], "unknown memory.policy 'fifo'"),
    ("unknown model", None, ["--set", "proxy.name=resnet9000"], "unknown proxy.name 'resnet9000'"),
    ("unknown dataset", None, ["--set", "data.dataset=imagenet21k"], "unknown data.dataset 'imagenet21k'"),
    (
        "a key of an earlier version",
        None,
        ["--set", "scoring.max_actors=2"],
        "config key 'scoring.max_actors' is gone: scorers now live for the whole run, so there is one count: "
        "set scoring.actors",
    ),
    ("use_gpu not a choice", None, ["--set", "learner.use_gpu=maybe"], "learner.use_gpu = 'maybe'"),
    ("unknown pool growth", None, ["--set", "pool.growth=daily"], "unknown pool.growth 'daily'"),
    ("arrivals without a directory", None, ["--set", "pool.growth=arrivals"], "needs pool.arrivals_dir"),
    (
        "arrivals directory missing",
        None,
        ["--set", "pool.growth=arrivals", "--set", "pool.arrivals_dir={root}/none"],
        "pool.arrivals_dir {root}/none is not a directory",
    ),
    (
        "class order names an unknown class",
        None,
        ["--set", "pool.growth=class_incremental", "--set", "pool.class_order=[0,1,2,3,4,5,6,7,8,10]"],
        "pool.class_order names class 10",
    ),
    (
        "class-incremental schedule beyond the arrived classes",
        None,
        ["--set", "pool.growth=class_incremental", "--set", "pool.initial_classes=1", "--set", "schedule.initial=50"],
        "by round 0 the schedule asks for 50 labels, but only 40 examples",
    ),
    (
        "candidates a fraction above 1",
        None,
        ["--set", "scoring.candidates=2.5"],
        "scoring.candidates = 2.5: a fraction must lie in (0, 1]",
    ),
    (
        "unknown stopping criterion",
        None,
        ["--set", "stopping=[{{criterion: patience}}]"],
        "unknown stopping[0].criterion 'patience': choose one of accuracy_plateau",
    ),
    (
        "stopping kappa out of range",
        None,
        ["--set", "stopping=[{{criterion: stable_predictions, kappa: 2}}]"],
        "stopping[0].kappa = 2.0: Cohen's kappa lies in [-1, 1]",
    ),
    (
        "unknown tracker",
        None,
        ["--set", "tracking=wandb"],
        "unknown tracking 'wandb': choose one of mlflow, tensorboard",
    ),
    # data
    ("missing data directory", None, ["--data-dir", "{root}/nowhere"], "missing data file"),
    ("missing label file", damage(lambda d: (d / POOL_LABELS).unlink()), [], "missing data file"),
    (
        "truncated gzip",
        damage(lambda d: (d / POOL_IMAGES).write_bytes((d / POOL_IMAGES).read_bytes()[:2000])),
        [],
        "is not a readable gzip file",
    ),
    (
        "not gzip at all",
        damage(lambda d: (d / TEST_LABELS).write_bytes(b"hello, world")),
        [],
        "is not a readable gzip file",
    ),
    (
        "IDX file too short",
        damage(lambda d: (d / TEST_LABELS).write_bytes(gzip.compress(b"\0\0"))),
        [],
        "is too short to be an IDX file",
    ),
    (
        "wrong IDX magic",
        damage(lambda d: shutil.copy(d / TEST_LABELS, d / TEST_IMAGES)),
        [],
        "has IDX magic 2049, expected 2051",
    ),
    (
        "IDX body truncated",
        damage(lambda d: rewrite_idx(d / POOL_LABELS, lambda raw: raw[:-5])),
        [],
        "the file is truncated or corrupt",
    ),
    (
        "wrong image shape",
        damage(lambda d: (d / TEST_IMAGES).write_bytes(gzip.compress(idx_bytes(np.zeros((100, 32, 32), np.uint8))))),
        [],
        "images are 32x32, expected 28x28",
    ),
    (
        "image and label counts differ",
        damage(lambda d: (d / TEST_IMAGES).write_bytes(gzip.compress(idx_bytes(np.zeros((99, 28, 28), np.uint8))))),
        [],
        "holds 99 images but",
    ),
    (
        "label out of range",
        damage(lambda d: rewrite_idx(d / TEST_LABELS, set_byte(8, 10))),
        [],
        "label 10 is outside 0..9",
    ),
    (
        "empty pool",
        damage(
            lambda d: (
                (d / POOL_IMAGES).write_bytes(gzip.compress(idx_bytes(np.zeros((0, 28, 28), np.uint8)))),
                (d / POOL_LABELS).write_bytes(gzip.compress(idx_bytes(np.zeros(0, np.uint8)))),
            )
        ),
        [],
        "the pool split in",
    ),
    # run directory
    ("run dir holds another run", saved_run("update.steps=9"), [], "holds a run with update.steps = 9, not 7"),
    ("run dir holds other files", write_file("run/notes.txt", "mine"), [], "already holds files; pass a new --run-dir"),
    ("run dir is a file", write_file("run", "not a directory"), [], "is a file, not a directory"),
    (
        "resume a directory with no run",
        write_file("run/notes.txt", "mine"),
        ["--resume", "{root}/run"],
        "holds no clactive run (no config.yaml)",
    ),
    (
        "resume with a new config",
        saved_run(),
        ["--set", "seed=1", "--resume", "{root}/run"],
        "--resume continues a run with its own config",
    ),
    ("resume a damaged round", broken_round, [], "round 0 in"),
]


@pytest.fixture(scope="module")
def valid_data(tmp_path_factory):
    return write_fashion_like(tmp_path_factory.mktemp("valid"))


def tree(root: Path) -> dict[str, str]:
    """Every path under `root` with a digest of its bytes: what 'unchanged' is checked against."""
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    return (
        {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))
        }
        if root.exists()
        else {}
    )


def test_the_table_covers_at_least_25_distinct_bad_inputs():
    assert len({name for name, *_ in CASES}) == len(CASES) >= 25


@pytest.mark.parametrize("name, setup, extra, cause", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    tmp_path, valid_data, monkeypatch, capsys, name, setup, extra, cause
):
    data_dir = shutil.copytree(valid_data, tmp_path / "raw")
    case = Case(tmp_path, data_dir)
    if setup:
        setup(case)
    before = tree(case.run_dir)
    monkeypatch.setattr(pipeline.cli, "connect", lambda *a, **k: pytest.fail("bad input reached Ray"))
    monkeypatch.setattr(actors.driver, "run_rounds", lambda *a, **k: pytest.fail("bad input reached Ray"))
    sets = (
        [] if "--resume" in extra else [arg for item in tiny_overrides(data_dir, tmp_path) for arg in ("--set", item)]
    )
    argv = ["run", *sets, *[arg.format(root=tmp_path) for arg in extra]]

    assert pipeline.cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("clactive: error: "), err
    assert cause.format(root=tmp_path) in err
    assert tree(case.run_dir) == before  # the run directory is untouched
    assert not list(tmp_path.rglob(".*.tmp"))  # no half-written data cache
