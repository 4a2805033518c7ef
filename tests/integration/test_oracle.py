"""The external oracle end to end, through the command line's entry point: `clactive run` pauses each
round for labels, answers arrive (an answers CSV, `clactive label simulate`), `clactive run --resume`
continues; the run ends with the selection of a run with the simulated oracle and the same seed.
The commands run in this process, on the session's Ray (a process per command would add seconds of
imports each); tests/integration/test_cli.py covers `clactive` as a process."""

import numpy as np
import pyarrow.parquet as pq
import pytest

import pipeline.cli
from pipeline.data import get_source, prepare_dataset, read_rows
from pipeline.loop.run_store import RunStore
from tests.helpers import tiny_config
from tests.integration.conftest import selection, two_round_args
from tests.integration.test_cli import in_process

pytestmark = pytest.mark.ray


def requested(run_dir, r):
    return pq.read_table(run_dir / "requests" / f"{r:04d}" / "to_label.parquet")


def label(*argv) -> int:
    """`clactive label ...` in-process: it reads the run directory and needs no Ray."""
    return pipeline.cli.main(["label", *map(str, argv)])


def test_an_external_oracle_run_pauses_every_round_ends_with_the_simulated_selection_and_accepts_a_partial_round(
    ray_cluster, tiny_data_dir, tmp_path, unbroken, capsys
):
    run_dir = tmp_path / "run"
    config = tiny_config(tiny_data_dir, tmp_path)
    data = prepare_dataset(get_source("fashion_mnist", tiny_data_dir), config.data.cache_dir, config.data.shard_rows)

    # two rounds, as `unbroken` (the simulated oracle's run): round 0 is answered in full, round 1
    # asks for the ids `unbroken` chose and continues with part of its answers (--accept-partial).
    # Tracked with MLflow: each of the three processes continues the same tracking run.
    args = two_round_args(tiny_data_dir, tmp_path, "oracle=external", "tracking=mlflow")
    answers = round_0_paused_and_answered(capsys, args, run_dir, data, tmp_path)
    table = round_1_paused_with_hints_and_partly_answered(capsys, run_dir, unbroken)
    round_1_continued_with_its_answers(capsys, run_dir, table)
    tracked_once_per_round(run_dir)
    assert label("import", run_dir, answers) == 2  # every round is final now
    assert "has finished all 2 rounds" in capsys.readouterr().err


def round_0_paused_and_answered(capsys, args, run_dir, data, tmp_path):
    """`clactive run` pauses round 0; a person answers half in a CSV, the rest is simulated. The CSV."""
    code, out, err = in_process(capsys, "run", *args)
    assert code == 0, err[-3000:]
    assert "round 0 waits for 40 labels" in out and "requests/0000/to_label.csv" in out
    assert "clactive label import" in out and RunStore(run_dir).committed_rounds() == []

    # round 0: a person answers half in a CSV, the rest is simulated; no model yet, so no hints
    table = requested(run_dir, 0)
    assert table.column("predicted_label").null_count == 40
    ids = table.column("id").to_numpy()
    _, truth = read_rows(data.split_dir("pool"), ids, data.image_shape)
    answers = tmp_path / "answers.csv"
    answers.write_text("id,label\n" + "".join(f"{i},{y}\n" for i, y in zip(ids[:20], truth[:20])))
    assert label("import", run_dir, answers) == 0
    assert label("simulate", run_dir) == 0
    return answers


def round_1_paused_with_hints_and_partly_answered(capsys, run_dir, unbroken):
    """Resuming commits round 0 and pauses round 1, whose request holds the simulated run's choices;
    20 of its 30 are answered. Round 1's request table."""
    # round 1: resume, which commits round 0 and asks for round 1's labels, with the model's hints
    code, out, err = in_process(capsys, "run", "--resume", run_dir)
    assert code == 0, err[-3000:]
    assert "round 1 waits for 30 labels" in out and RunStore(run_dir).committed_rounds() == [0]
    table = requested(run_dir, 1)
    assert table.column("predicted_label").null_count == 0
    assert set(table.column("predicted_label").to_pylist()) <= set(range(10))
    assert np.all(np.diff(table.column("score").to_numpy()) <= 1e-5)  # the hints' scores in selection order
    assert [selection(run_dir)[0], table.column("id").to_pylist()] == unbroken  # the simulated run's choices
    assert label("simulate", run_dir, "--count", 20) == 0
    return table


def round_1_continued_with_its_answers(capsys, run_dir, table):
    """A plain resume is refused; --accept-partial commits round 1 with the 20 answered, and the run is done."""
    # round 1 has 20 of its 30 answers: a plain resume is refused; --accept-partial continues with them
    code, _, err = in_process(capsys, "run", "--resume", run_dir)
    assert code == 2 and "round 1 waits for 10 of its 30 labels" in err
    code, out, err = in_process(capsys, "run", "--resume", run_dir, "--accept-partial")
    assert code == 0, err[-3000:]
    assert "waits for" not in out
    records = RunStore(run_dir).records()
    assert [(r["requested"], r["answered"], r["acquired"], r["labelled"]) for r in records] == [
        (40, 40, 40, 40),
        (30, 20, 20, 60),
    ]
    assert selection(run_dir)[1] == table.column("id").to_pylist()[:20]  # the answered ones, in selection order
    capsys.readouterr()
    assert pipeline.cli.main(["status", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "rounds done: 2 of 2; labels acquired: 60" in out and "finished" in out


def tracked_once_per_round(run_dir):
    """The three processes continued one MLflow run, which holds each round once and the run's plots."""
    from mlflow.tracking import MlflowClient  # read back through MLflow's own API

    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("clactive").experiment_id])
    assert len(runs) == 1 and runs[0].data.params["oracle"] == "external"
    history = client.get_metric_history(runs[0].info.run_id, "labelled")
    assert sorted((m.step, m.value) for m in history) == [(0, 40), (1, 60)]  # each round once
    assert "plots/selection_time.png" in {a.path for a in client.list_artifacts(runs[0].info.run_id, "plots")}
