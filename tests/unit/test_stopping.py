import numpy as np
import pytest

from pipeline.config.run_config import StopConfig
from pipeline.errors import ConfigError
from pipeline.loop.stopping import CRITERIA, cohens_kappa, create_criteria, first_stop


def criterion(name, **kwargs):
    return create_criteria((StopConfig(criterion=name, **kwargs),))[0]


def rounds(*accs, scores=None, kappas=None):
    """Records as the loop commits them: round 0 is random, so it has no score mean and no kappa."""
    records = []
    for r, acc in enumerate(accs):
        record = {"round": r, "labelled": 100 * (r + 1), "selection_val_acc": acc}
        if r > 0 and scores is not None:
            record["selection_score_mean"] = scores[r - 1]
        if r > 0 and kappas is not None:
            record["stop_set_kappa"] = kappas[r - 1]
        records.append(record)
    return records


def test_names_are_the_three_documented_criteria():
    assert CRITERIA.names() == ["accuracy_plateau", "stable_predictions", "uncertainty"]


@pytest.mark.parametrize("name", CRITERIA.names())
def test_every_criterion_goes_on_without_records_or_without_its_fields(name):
    c = criterion(name)
    assert c.name == name
    assert c.check([]) is None
    assert c.check([{"round": r, "labelled": 10 * r} for r in range(6)]) is None


def test_unknown_criterion_is_one_line_listing_the_choices():
    with pytest.raises(ConfigError) as err:
        create_criteria((StopConfig(criterion="accuracy_plateau"), StopConfig(criterion="patience")))
    assert str(err.value) == (
        "unknown stopping criterion 'patience': choose one of accuracy_plateau, stable_predictions, uncertainty"
    )


def test_create_criteria_keeps_config_order():
    made = create_criteria((StopConfig(criterion="uncertainty"), StopConfig(criterion="accuracy_plateau")))
    assert [c.name for c in made] == ["uncertainty", "accuracy_plateau"]


# accuracy_plateau


def test_plateau_holds_when_each_of_the_last_n_changes_is_below_epsilon():
    c = criterion("accuracy_plateau", rounds=2, epsilon=0.005)
    reason = c.check(rounds(0.70, 0.8412, 0.8431, 0.8440))
    assert reason == "validation accuracy moved less than 0.005 over the last 2 rounds (0.8412, 0.8431, 0.8440)"


def test_plateau_counts_falls_as_well_as_rises():
    c = criterion("accuracy_plateau", rounds=2, epsilon=0.005)
    assert c.check(rounds(0.84, 0.80, 0.801)) is None  # |-0.04| is not flat
    assert c.check(rounds(0.84, 0.837, 0.836)) is not None


def test_plateau_does_not_hold_when_one_change_is_epsilon_or_more():
    c = criterion("accuracy_plateau", rounds=2, epsilon=0.005)
    assert c.check(rounds(0.80, 0.81, 0.812)) is None  # first change 0.01
    assert c.check(rounds(0.80, 0.801, 0.811)) is None  # last change 0.01
    assert c.check(rounds(0.5, 0.75, 1.0)) is None


def test_plateau_needs_n_plus_one_records():
    c = criterion("accuracy_plateau", rounds=3, epsilon=0.01)
    assert c.check(rounds(0.8, 0.8, 0.8)) is None  # only 2 changes
    assert c.check(rounds(0.8, 0.8, 0.8, 0.8)) is not None


def test_plateau_ignores_a_window_with_a_missing_accuracy():
    c = criterion("accuracy_plateau", rounds=2, epsilon=0.01)
    records = rounds(0.8, 0.8, 0.8)
    del records[1]["selection_val_acc"]
    assert c.check(records) is None
    del records[0]["selection_val_acc"]  # outside the window of the next check
    records.append({"round": 3, "labelled": 400, "selection_val_acc": 0.8})
    records[1]["selection_val_acc"] = 0.8
    assert c.check(records) is not None


# uncertainty


def test_uncertainty_holds_when_the_last_batch_scores_below_threshold():
    c = criterion("uncertainty", threshold=0.05)
    reason = c.check(rounds(0.7, 0.8, 0.85, scores=[0.30, 0.0312]))
    assert reason == "the chosen batch's mean acquisition score 0.0312 fell below 0.05 in round 2"


def test_uncertainty_reads_only_the_last_record():
    c = criterion("uncertainty", threshold=0.05)
    assert c.check(rounds(0.7, 0.8, 0.85, scores=[0.01, 0.20])) is None
    assert c.check(rounds(0.7, 0.8, scores=[0.05])) is None  # equal is not below


def test_uncertainty_goes_on_after_a_random_round_or_an_unscored_acquisition():
    c = criterion("uncertainty", threshold=0.05)
    assert c.check(rounds(0.7)) is None  # round 0 has no score mean
    records = rounds(0.7, 0.8, scores=[0.01])
    del records[-1]["selection_score_mean"]
    assert c.check(records) is None


# stable_predictions


def test_stable_predictions_holds_when_the_last_n_kappas_reach_kappa():
    c = criterion("stable_predictions", rounds=3, kappa=0.99)
    reason = c.check(rounds(0.6, 0.7, 0.8, 0.8, 0.8, kappas=[0.90, 0.9912, 0.99, 0.9987]))
    assert reason == (
        "successive models agreed on the stop set with Cohen's kappa >= 0.99 "
        "over the last 3 rounds (0.9912, 0.9900, 0.9987)"
    )


def test_stable_predictions_does_not_hold_when_one_kappa_is_below():
    c = criterion("stable_predictions", rounds=3, kappa=0.99)
    assert c.check(rounds(0.6, 0.7, 0.8, 0.8, kappas=[0.995, 0.989, 0.999])) is None


def test_stable_predictions_needs_n_kappas_and_round_0_has_none():
    c = criterion("stable_predictions", rounds=3, kappa=0.99)
    assert c.check(rounds(0.6, 0.7, 0.8, kappas=[1.0, 1.0])) is None
    # three records, but round 0 carries no kappa
    assert c.check(rounds(0.6, 0.7, 0.8, kappas=[1.0, 1.0])[-3:]) is None
    assert c.check(rounds(0.6, 0.7, 0.8, 0.8, kappas=[1.0, 1.0, 1.0])) is not None


# first_stop


def test_first_stop_reports_the_first_criterion_that_holds_in_config_order():
    records = rounds(0.8, 0.8, 0.8, scores=[0.5, 0.01], kappas=[1.0, 1.0])
    plateau, uncertainty = criterion("accuracy_plateau"), criterion("uncertainty")
    assert first_stop([plateau, uncertainty], records)["criterion"] == "accuracy_plateau"
    assert first_stop([uncertainty, plateau], records) == {
        "criterion": "uncertainty",
        "reason": "the chosen batch's mean acquisition score 0.0100 fell below 0.05 in round 2",
    }


def test_first_stop_skips_criteria_that_do_not_hold_and_none_means_go_on():
    records = rounds(0.5, 0.6, 0.7, scores=[0.5, 0.01])
    both = [criterion("accuracy_plateau"), criterion("uncertainty")]
    assert first_stop(both, records)["criterion"] == "uncertainty"
    assert first_stop(both[:1], records) is None
    assert first_stop([], records) is None


# cohens_kappa


def test_kappa_matches_a_hand_computation():
    # a rows, b columns:   b=0 b=1 b=2 | a-marginal
    #               a=0     2   1   0  |  3
    #               a=1     0   1   1  |  2
    #               a=2     0   0   1  |  1
    #        b-marginal     2   2   2  |  6
    # p_o = (2+1+1)/6 = 2/3;  p_e = (3*2 + 2*2 + 1*2)/36 = 1/3;  kappa = (2/3 - 1/3)/(1 - 1/3) = 0.5
    a = np.array([0, 0, 0, 1, 1, 2])
    b = np.array([0, 0, 1, 1, 2, 2])
    assert cohens_kappa(a, b, num_classes=3) == pytest.approx(0.5)
    assert cohens_kappa(b, a, num_classes=3) == pytest.approx(0.5)


def test_kappa_of_systematic_disagreement_is_negative():
    # p_o = 0, p_e = (1*1 + 1*1)/4 = 1/2 -> kappa = -1
    assert cohens_kappa(np.array([0, 1]), np.array([1, 0]), num_classes=2) == pytest.approx(-1.0)


def test_kappa_of_identical_labelings_is_one():
    a = np.random.default_rng(0).integers(0, 10, size=500)
    assert cohens_kappa(a, a.copy(), num_classes=10) == 1.0


def test_kappa_of_two_identical_one_class_labelings_is_one_not_nan():
    # chance agreement is 1, so the formula is 0/0; identical predictions count as stable
    assert cohens_kappa(np.full(7, 2), np.full(7, 2), num_classes=4) == 1.0


def test_kappa_rejects_mismatched_or_out_of_range_labels():
    with pytest.raises(ValueError):
        cohens_kappa(np.array([0, 1]), np.array([0, 1, 1]), num_classes=2)
    with pytest.raises(ValueError):
        cohens_kappa(np.array([0, 2]), np.array([0, 1]), num_classes=2)
    with pytest.raises(ValueError):
        cohens_kappa(np.array([], dtype=int), np.array([], dtype=int), num_classes=2)
