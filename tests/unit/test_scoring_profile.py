"""The scoring profile's bookkeeping (benchmarks/scoring_profile.py): process kinds and the scoring seconds."""

from benchmarks.scoring_profile import during_scoring, kind, parse_load


def test_processes_are_told_apart_by_their_ray_titles():
    assert kind("ray::Scorer.score") == kind("ray::Scorer") == "scorer"
    assert kind("ray::ReadPoolShards->SplitBlocks(34)") == kind("ray::IDLE") == "task workers (read tasks)"
    assert kind("ray::RayTrainWorker") == "Train worker" and kind("ray::Coordinator.run_round") == "coordinator"
    assert kind("ray::_StatsActor") == kind("ray::TrainController.run") == "other Ray actors"
    assert kind("/x/ray/core/src/ray/raylet/raylet --raylet_socket_name=/tmp/a") == "Ray daemons"
    assert kind("ray::DashboardAgent") == "Ray daemons"
    assert kind("/x/bin/python -m pipeline compare --config c.yaml") == "compare driver"
    assert kind("/usr/bin/sleep 5") == "other"


def test_only_the_seconds_with_the_scorer_in_score_count():
    samples = [
        {("1", "ray::Scorer"): 0.1, ("2", "raylet --x"): 0.5},  # between passes
        {("1", "ray::Scorer.score"): 1.8, ("3", "ray::IDLE"): 0.2, ("2", "raylet --x"): 0.1},
        {("1", "ray::Scorer.score"): 1.7, ("4", "ray::RayTrainWorker"): 0.3},
    ]
    seconds, by_kind = during_scoring(samples)
    assert seconds == 2
    assert by_kind == {"scorer": 3.5, "task workers (read tasks)": 0.2, "Ray daemons": 0.1, "Train worker": 0.3}


def test_a_load_is_a_fraction_of_a_core_and_how_often_it_wakes():
    assert parse_load("0") == (0.0, 0.01) and parse_load("0.15@1") == (0.15, 0.001) and parse_load("0.3") == (0.3, 0.01)
