"""The external oracle without Ray: requests, answers, their checks, status, and the CLI's refusals.

A request is written here as the coordinator writes it (pipeline.labels.requests.LabelRequests.create),
on tiny generated data in the real formats; everything after that is what a person runs.
"""

import csv
import hashlib
import io
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import actors.driver
import pipeline.cli
from pipeline.compare import load as load_compare
from pipeline.data import get_source, prepare_dataset, read_rows
from pipeline.errors import ConfigError, OracleError
from pipeline.labels.answer_files import read_answers
from pipeline.labels.answers import check_answers
from pipeline.labels.requests import LabelRequests
from pipeline.labels.status import status_lines
from pipeline.loop.run_store import RunStore
from tests.helpers import tiny_config, write_fashion_like

REQUESTED = 40  # the tiny schedule's initial set


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("oracle")
    data_dir = write_fashion_like(root / "raw")
    config = tiny_config(data_dir, root)
    return (
        data_dir,
        root,
        prepare_dataset(get_source("fashion_mnist", data_dir), config.data.cache_dir, config.data.shard_rows),
    )


def meta(data, round_index=0):
    return {
        "num_classes": data.num_classes,
        "num_rounds": 3,
        "rng": {"state": round_index},
        "admitted": [],
        "candidates": data.pool_size,
        "seconds": {"score": 0.0, "select": 0.0, "score_compute": 0.0, "hints": 0.0},
        "paused_after_s": 0.0,
        "created": time.time(),
    }


class Run:
    """A run directory with oracle: external and round 0's request written, as the coordinator leaves it."""

    def __init__(self, tmp_path, data, *extra):
        data_dir, root, self.data = data
        self.config = tiny_config(data_dir, root, f"run_dir={tmp_path / 'run'}", "oracle=external", *extra)
        self.dir = tmp_path / "run"
        self.store = RunStore.create(self.dir, self.config)
        self.requests = LabelRequests(self.store)
        self.ids = np.random.default_rng(0).choice(self.data.pool_size, REQUESTED, replace=False).astype(np.int64)
        self.images, self.truth = read_rows(self.data.split_dir("pool"), self.ids, self.data.image_shape)

    def ask(self, hints=None, round_index=0):
        return self.requests.create(round_index, self.ids, self.images, hints, meta(self.data, round_index))

    def answers_file(self, rows, name="answers.csv"):
        path = self.dir.parent / name
        if name.endswith(".csv"):
            path.write_text("id,label\n" + "".join(f"{i},{label}\n" for i, label in rows))
        else:
            pq.write_table(
                pa.table(
                    {
                        "id": pa.array([i for i, _ in rows], pa.int64()),
                        "label": pa.array([label for _, label in rows], pa.int64()),
                    }
                ),
                path,
            )
        return path

    def truth_rows(self, positions):
        return [(int(self.ids[p]), int(self.truth[p])) for p in positions]

    def commit_round_0(self):
        writer = self.store.begin_round(0)
        writer.labels(self.ids, self.truth)
        writer.state({}, {"state": 0}, b"weights")
        writer.commit({"round": 0, "labelled": REQUESTED, "acquired": REQUESTED})


def cli(*argv) -> int:
    return pipeline.cli.main([str(a) for a in argv])


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


# --- the request ----------------------------------------------------------------------------------


def test_a_request_holds_ids_in_selection_order_images_and_hints_and_a_csv_to_fill_in(tmp_path, data):
    run = Run(tmp_path, data)
    hints = {
        "predicted_label": np.arange(REQUESTED) % 10,
        "predicted_prob": np.linspace(0.1, 0.9, REQUESTED),
        "score": np.full(REQUESTED, np.nan),
    }  # k_center has no per-example score: null
    run.ask(hints)
    base = run.dir / "requests" / "0000"
    table = pq.read_table(base / "to_label.parquet")
    assert table.column_names == ["id", "image", "predicted_label", "predicted_prob", "score"]
    np.testing.assert_array_equal(table.column("id").to_numpy(), run.ids)  # selection order, not sorted
    np.testing.assert_array_equal(run.requests.images(0, run.ids[::-1]), run.images[::-1])
    assert table.column("score").null_count == REQUESTED
    rows = list(csv.reader(io.StringIO((base / "to_label.csv").read_text())))
    assert rows[0] == ["id", "label", "predicted_label", "predicted_prob", "score"]
    assert rows[1] == [str(run.ids[0]), "", "0", "0.1000", ""] and len(rows) == 1 + REQUESTED


def test_round_0_has_no_model_so_its_hints_are_null(tmp_path, data):
    run = Run(tmp_path, data)
    run.ask()
    table = pq.read_table(run.dir / "requests" / "0000" / "to_label.parquet")
    assert all(table.column(name).null_count == REQUESTED for name in ("predicted_label", "predicted_prob", "score"))


def test_a_request_outlives_the_cleanup_of_uncommitted_rounds_and_is_never_rewritten(tmp_path, data):
    run = Run(tmp_path, data)
    run.ask()
    run.store.begin_round(0).labels(run.ids[:1], run.truth[:1])  # a round a crash interrupted
    assert run.store.discard_uncommitted() == ["0000"]
    assert run.requests.open().requested == REQUESTED
    with pytest.raises(OracleError, match="already has a label request"):
        run.ask()


def test_a_request_a_crash_left_half_written_does_not_exist_and_is_written_again(tmp_path, data):
    run = Run(tmp_path, data)
    (run.dir / "requests" / "0000").mkdir(parents=True)
    (run.dir / "requests" / "0000" / "to_label.parquet").write_bytes(b"half")  # no request.json
    assert run.requests.open() is None
    assert run.ask().requested == REQUESTED and run.requests.open() is not None


# --- answers ------------------------------------------------------------------------------------


def test_partial_imports_add_up_and_an_export_of_everything_so_far_imports_again(tmp_path, data, capsys):
    run = Run(tmp_path, data)
    run.ask()
    assert cli("label", "import", run.dir, run.answers_file(run.truth_rows(range(10)))) == 0
    assert "stored 10 answers" in capsys.readouterr().out
    assert run.requests.open().missing == REQUESTED - 10

    assert cli("label", "import", run.dir, run.answers_file(run.truth_rows(range(REQUESTED)), "all.parquet")) == 0
    out = capsys.readouterr().out
    assert "stored 30 answers" in out and "10 already stored" in out and f"all {REQUESTED} answered" in out
    request = run.requests.open()
    ids, labels = request.answered_ids()
    np.testing.assert_array_equal(ids, run.ids)  # in selection order
    np.testing.assert_array_equal(labels, run.truth)
    assert len(list((run.dir / "requests" / "0000" / "answers").glob("*.parquet"))) == 2


def test_the_to_label_csv_with_some_labels_filled_in_imports_those_rows(tmp_path, data, capsys):
    run = Run(tmp_path, data)
    run.ask()
    lines = (run.dir / "requests" / "0000" / "to_label.csv").read_text().splitlines()
    for row in range(1, 6):
        cells = lines[row].split(",")
        cells[1] = str(run.truth[row - 1])
        lines[row] = ",".join(cells)
    filled = tmp_path / "to_label.csv"
    filled.write_text("\n".join(lines) + "\n")
    assert cli("label", "import", run.dir, filled) == 0
    out = capsys.readouterr().out
    assert "stored 5 answers" in out and f"{REQUESTED - 5} rows without a label" in out
    assert f"5 of {REQUESTED} answered, {REQUESTED - 5} missing" in out and "--accept-partial" in out


def test_simulate_answers_from_the_pool_label_column_in_selection_order(tmp_path, data, capsys):
    run = Run(tmp_path, data)
    run.ask()
    assert cli("label", "simulate", run.dir, "--count", 7) == 0
    request = run.requests.open()
    assert request.answered == 7 and set(request.answers) == set(run.ids[:7].tolist())
    assert cli("label", "simulate", run.dir) == 0
    assert f"all {REQUESTED} answered" in capsys.readouterr().out
    np.testing.assert_array_equal(run.requests.open().answered_ids()[1], run.truth)


def test_answer_checks_name_the_first_bad_answer_and_where_it_is(tmp_path, data):
    run = Run(tmp_path, data)
    request = run.ask()
    ids, labels, where, skipped = read_answers("a.csv", b"label,id,note\n3,%d,x\n,%d,\n" % (run.ids[0], run.ids[1]))
    assert ids.tolist() == [run.ids[0]] and labels.tolist() == [3] and where == ["line 2"] and skipped == 1
    with pytest.raises(OracleError, match="a.csv line 3: label 10 for id"):
        check_answers(request, run.ids[:2], np.array([1, 10]), ["line 2", "line 3"], 10, "a.csv", "to_label.csv")


# --- bad answers: one line, exit 2, nothing stored changes ----------------------------------------


def answers(text, name="bad.csv"):
    """A case's answers file: its bytes (or a function of the run giving them), written beside the run."""

    def make(run):
        (run.dir.parent / name).write_bytes(text(run) if callable(text) else text)
        return name

    return make


def first_id(run):
    return int(run.ids[0])


def float_labels(run):
    pq.write_table(pa.table({"id": pa.array([first_id(run)]), "label": pa.array([1.5])}), run.dir.parent / "f.parquet")
    return "f.parquet"


# (name, what the case does to the run before the import, its answers file, the cause the message must name)
BAD_ANSWERS = [
    (
        "id not requested",
        None,
        answers(lambda r: b"id,label\n%d,1\n399999,2\n" % first_id(r)),
        "line 3: id 399999 was not requested in round 0",
    ),
    ("label above the classes", None, answers(lambda r: b"id,label\n%d,10\n" % first_id(r)), "line 2: label 10 for id"),
    ("negative label", None, answers(lambda r: b"id,label\n%d,-1\n" % first_id(r)), "is outside 0..9"),
    (
        "label not a number",
        None,
        answers(lambda r: b"id,label\n%d,shirt\n" % first_id(r)),
        "line 2: label 'shirt' is not an integer",
    ),
    (
        "id answered twice",
        None,
        answers(lambda r: b"id,label\n%d,1\n%d,1\n" % (first_id(r), first_id(r))),
        "is answered twice (line 2 and line 3)",
    ),
    (
        "contradicts a stored answer",
        "answer_first",
        answers(lambda r: b"id,label\n%d,%d\n" % (first_id(r), (int(r.truth[0]) + 1) % 10)),
        "is already answered",
    ),
    ("no label column", None, answers(b"id,class\n1,2\n"), "has no label column (found: id, class)"),
    ("empty file", None, answers(b""), "has no id or label column (found: nothing)"),
    (
        "only empty labels",
        None,
        answers(lambda r: b"id,label\n%d,\n" % first_id(r)),
        "holds no answers (1 rows have an empty label",
    ),
    ("not UTF-8", None, answers(b"\xff\xfe\x00id"), "is not a UTF-8 text file"),
    ("unknown format", None, answers(b"id\tlabel\n", "answers.xlsx"), "unknown answers format '.xlsx'"),
    ("not Parquet", None, answers(b"id,label\n1,2\n", "answers.parquet"), "is not a readable Parquet file"),
    ("float labels in Parquet", None, lambda run: float_labels(run), "column label holds double, not integers"),
    ("missing answers file", None, lambda run: "nowhere.csv", "answers file"),
    ("import into a committed round", "commit", answers(lambda r: b"id,label\n%d,1\n" % first_id(r)), "round 0 of"),
    ("no request written yet", "no_request", answers(b"id,label\n1,1\n"), "has no open label request"),
    ("a simulated-oracle run", "simulated", answers(b"id,label\n1,1\n"), "runs with oracle: simulated"),
]


@pytest.mark.parametrize("name, setup, make_file, cause", BAD_ANSWERS, ids=[c[0] for c in BAD_ANSWERS])
def test_bad_answers_are_one_line_exit_2_and_store_nothing(tmp_path, data, capsys, name, setup, make_file, cause):
    run = Run(tmp_path, data, *(["oracle=simulated"] if setup == "simulated" else []))
    if setup not in ("no_request", "simulated"):
        run.ask()
    if setup == "answer_first":
        assert cli("label", "import", run.dir, run.answers_file(run.truth_rows([0]))) == 0
    if setup == "commit":
        run.commit_round_0()
    file_name = make_file(run)
    capsys.readouterr()
    before = tree(run.dir)

    assert cli("label", "import", run.dir, run.dir.parent / file_name) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("clactive: error: "), err
    assert cause in err
    assert tree(run.dir) == before


def test_the_bad_answer_table_covers_every_case_the_issue_names():
    names = {name for name, *_ in BAD_ANSWERS}
    assert {
        "id not requested",
        "label above the classes",
        "id answered twice",
        "unknown format",
        "import into a committed round",
    } <= names and len(names) == len(BAD_ANSWERS)


# --- resuming and status --------------------------------------------------------------------------


@pytest.fixture
def no_ray(monkeypatch):
    """`clactive run` in-process, stopped where Ray would start; yields the calls that reached it."""
    calls = []
    monkeypatch.setattr(pipeline.cli, "connect", lambda address, verbose: None)
    monkeypatch.setattr(
        actors.driver, "run_rounds", lambda plan, **kw: calls.append(kw) or {"waiting": None, "records": []}
    )
    return calls


def test_resuming_while_answers_are_missing_says_how_many_and_what_to_do(tmp_path, data, capsys, no_ray):
    run = Run(tmp_path, data)
    run.ask()
    assert cli("run", "--resume", run.dir) == 2
    assert f"waits for the {REQUESTED} labels it asked for and none is answered yet" in capsys.readouterr().err
    assert cli("run", "--resume", run.dir, "--accept-partial") == 2  # nothing to continue with
    cli("label", "simulate", run.dir, "--count", 10)
    capsys.readouterr()
    assert cli("run", "--resume", run.dir) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"round 0 waits for {REQUESTED - 10} of its {REQUESTED} labels" in err and "--accept-partial" in err
    assert not no_ray
    assert cli("run", "--resume", run.dir, "--accept-partial") == 0
    assert len(no_ray) == 1 and no_ray[0]["accept_partial"] is True


def test_accept_partial_is_refused_for_a_simulated_oracle(tmp_path, data, capsys, no_ray):
    run = Run(tmp_path, data, "oracle=simulated")
    assert cli("run", "--resume", run.dir, "--accept-partial") == 2
    assert "this run's oracle is simulated: drop --accept-partial" in capsys.readouterr().err and not no_ray


def test_status_shows_rounds_labels_and_the_open_request(tmp_path, data, capsys):
    run = Run(tmp_path, data)
    assert status_lines(run.store)[1] == "rounds done: 0 of 3; labels acquired: 0"
    run.ask()
    cli("label", "simulate", run.dir, "--count", 15)
    capsys.readouterr()
    assert cli("status", run.dir) == 0
    out = capsys.readouterr().out
    assert "oracle external" in out
    assert f"open request: round 0 asks for {REQUESTED} labels: 15 answered, {REQUESTED - 15} missing" in out
    assert "requests/0000/to_label.csv" in out
    run.commit_round_0()
    lines = status_lines(run.store)
    assert lines[1] == f"rounds done: 1 of 3; labels acquired: {REQUESTED}"
    assert "asks for the labels of round 1" in lines[2]


def test_oracle_must_be_simulated_or_external_and_compare_refuses_external(tmp_path, data):
    data_dir, root, _ = data
    with pytest.raises(ConfigError, match="unknown oracle 'crowd': choose one of simulated, external"):
        tiny_config(data_dir, root, "oracle=crowd")
    with pytest.raises(ConfigError, match="compare runs every strategy unattended"):
        load_compare(None, ["oracle=external"], quick=False, data_dir=None)
