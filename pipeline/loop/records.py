"""A committed round's record and a target fit's, built from what the round's steps returned. A
record is plain JSON: the round table, `clactive status`, compare, tracking and the stopping
criteria all read it."""

from __future__ import annotations

import numpy as np

from pipeline.config.run_config import RunConfig
from pipeline.loop.proc import peak_rss_mib
from pipeline.loop.seams import Answer, Selection, UpdateResult
from pipeline.loop.stopping import cohens_kappa
from pipeline.report.forgetting import forgetting, per_class_accuracy, seen_accuracy
from pipeline.update.strategies import UpdatePlan


def round_record(
    config: RunConfig,
    r: int,
    chosen: Selection,
    answer: Answer,
    plan: UpdatePlan,
    result: UpdateResult,
    seconds: dict[str, float],
    labelled: int,
    figures: dict,
) -> dict:
    """Round r's record; `figures`: its class figures (class_figures)."""
    record = {
        "round": r,
        "labelled": labelled,
        "acquired": int(len(answer.pool_ids)) if answer.pool_ids is not None else 0,
        "strategy": config.strategy,
        "acquisition": "random_initial" if r == 0 else config.acquisition,
        "selection_model": plan.role,
        "warm_start": plan.warm_start,
        "steps": result.steps,
        "train_examples": int(len(plan.train_ids)),
        "candidates": int(chosen.candidates),
        "selection_acc": result.test_acc,  # test: reported only
        "selection_val_acc": result.val_acc,  # validation (None: no validation split): what stops read
        **_curve(result),
        "loss": result.loss,
        "seconds": seconds,
        **figures,
        **answer.record,
    }
    # peak resident memory per process: what must not grow with the labels (coordinator) or the pool (scorers)
    record["peak_rss_mib"] = {
        "coordinator": peak_rss_mib(),
        "learner": result.peak_rss_mib,
        "scorers": chosen.scorer_rss_mib,
    }
    if result.launch_s is not None:  # the first update of this process's worker group
        seconds["learner_launch"] = result.launch_s
        record["resources"] = result.resources
    if chosen.score_mean is not None:
        record["selection_score_mean"] = chosen.score_mean
    if chosen.redone_passes:  # a fault Ray recovered from inside this round, for the driver to report
        record["redone_passes"] = chosen.redone_passes
    return record


def stop_set_kappa(previous: np.ndarray | None, result: UpdateResult, num_classes: int) -> dict:
    """Agreement with the previous round's model on the stop set, for stable_predictions ({} in round 0)."""
    if previous is None:
        return {}
    return {"stop_set_kappa": cohens_kappa(previous, result.stop_predictions, num_classes)}


def class_figures(result: UpdateResult, seen_per_round: list[tuple[int, ...]] | None, earlier: list[dict]) -> dict:
    """Per-class test accuracy; when classes arrive over the rounds (`seen_per_round`: the classes in
    the pool at rounds 0..r) also accuracy on the classes seen so far and forgetting, against the
    records of the earlier rounds."""
    correct, total = np.array(result.class_correct), np.array(result.class_total)
    figures: dict = {"per_class_acc": _json_floats(per_class_accuracy(correct, total))}
    if seen_per_round is not None:
        seen = seen_per_round[-1]
        history = [np.array([np.nan if a is None else a for a in rec["per_class_acc"]]) for rec in earlier]
        history.append(per_class_accuracy(correct, total))
        figures.update(
            classes=list(seen),
            acc_seen=seen_accuracy(correct, total, seen),
            forgetting=forgetting(history, seen_per_round),
        )
    return figures


def target_record(
    config: RunConfig, upto_round: int, labelled: int, result: UpdateResult, figures: dict, update_s: float
) -> dict:
    """A target fit on the labels of rounds 0..upto_round (forgetting is a selection model's figure)."""
    return {
        "round": upto_round,
        "labelled": labelled,
        "target": config.target.name,
        "target_acc": result.test_acc,
        "target_val_acc": result.val_acc,
        **_curve(result),
        "steps": result.steps,
        **{k: v for k, v in figures.items() if k != "forgetting"},
        "seconds": {"train": result.train_s, "eval": result.eval_s, "update": update_s},
    }


def _curve(result: UpdateResult) -> dict:
    """A from-scratch fit's validation accuracy after each epoch, where it was measured."""
    return {} if result.val_acc_per_epoch is None else {"val_acc_per_epoch": result.val_acc_per_epoch}


def _json_floats(values: np.ndarray) -> list[float | None]:
    """NaN (a class with no test examples) as null: JSON has no NaN."""
    return [None if np.isnan(v) else float(v) for v in values]
