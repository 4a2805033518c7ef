"""End to end on the real Fashion-MNIST files, when the Debian package is installed. It runs in this
process, on the session's Ray, through the command line's entry point."""

from pathlib import Path

import pytest

from pipeline.loop.run_store import RunStore
from tests.integration.test_cli import REPO, in_process, with_sets

DATA = Path("/usr/share/datasets/fashion-mnist")
pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (DATA / "train-images-idx3-ubyte.gz").is_file(),
        reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
    ),
]


def test_clactive_on_real_fashion_mnist(ray_cluster, tmp_path, capsys):
    """Round 1 scores a random 10,000 of the 57,820 unlabelled examples (scoring.candidates): the
    whole-pool pass is what `make run` does, and its ids against a plain loop: test_scoring.py. 1,000
    examples are held out of the pool as the validation split."""
    sets = [
        f"data.cache_dir={tmp_path / 'cache'}",
        f"run_dir={tmp_path / 'run'}",
        "schedule.initial=0.02",
        "schedule.round_ends=[0.03]",
        "update.steps=60",
        "target.name=small_cnn",
        "target.epochs=10",
        "scoring.candidates=10000",
        "data.validation=1000",  # the job holds out 5,000; 1,000 evaluate faster after every epoch
    ]
    code, printed, _ = in_process(capsys, "run", "--config", REPO / "configs" / "fashion_mnist.yaml", *with_sets(sets))
    assert code == 0
    assert "(59000 pool, 1000 validation, 10000 test)" in printed
    rows = [line.split() for line in printed.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    assert [row[1] for row in rows] == ["1180", "1770"]
    assert float(rows[-1][-1]) > 0.7  # the proxy on 1,800 labels; ~0.75-0.8 measured
    target_acc = float(printed.split("test accuracy ")[1].split(",")[0])
    assert target_acc > 0.7 and 0.7 < float(printed.split("validation ")[1].split()[0]) < 1
    records = RunStore(tmp_path / "run").records()
    assert [r["candidates"] for r in records] == [59000, 10000]
    assert len(records[0]["val_acc_per_epoch"]) == 10 and records[1]["selection_val_acc"] > 0.7
