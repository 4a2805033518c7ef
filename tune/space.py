"""What `clactive tune` searches and how it judges: the `tune:` section of a config. No Ray here.

    tune:
      space:                                  # run-config keys -> one distribution each
        memory.ratio: {uniform: [0.25, 2.0]}
        memory.policy: {choice: [random, class_balanced, reservoir]}
        update.steps: {randint: [50, 400]}    # high excluded, as in Ray Tune
        update.lr: {loguniform: [0.01, 0.2]}

Every range is checked before any trial starts: it must be non-empty, its key must be a run
config key, and both its ends (every choice) must make a valid run config.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pipeline.config.run_config import RunConfig, config_from_raw
from pipeline.config.sections import build_section, set_path
from pipeline.errors import ConfigError
from pipeline.loop.preflight import check_names

KINDS = ("uniform", "loguniform", "randint", "choice")
# What a search may choose on, always validation accuracy: the proxy's after every round, the target's
# (fitted on the trial's labels) after its last round. Test accuracy is reported beside them, never chosen on.
OBJECTIVES = ("proxy_val_acc", "target_val_acc")
REPORTED = {"proxy_val_acc": "proxy_test_acc", "target_val_acc": "target_test_acc"}  # objective -> its test twin
RENAMED = {"proxy_acc": "proxy_val_acc", "target_acc": "target_val_acc"}  # chose on test accuracy, before validation
REFERENCES = ("none", "full")
TIME_METRIC = "selection_s"


@dataclass(frozen=True)
class Param:
    key: str  # a run-config key, e.g. memory.ratio
    kind: str  # one of KINDS
    values: tuple  # (low, high) or the choices


@dataclass(frozen=True)
class TuneSection:
    dir: str = "runs/tune"
    num_samples: int = 8
    objective: str = "proxy_val_acc"  # validation accuracy at the final budget: proxy_val_acc | target_val_acc
    scheduler: str = "asha"  # asha: stop trials whose per-round proxy accuracy trails | none
    grace_rounds: int = 2  # ASHA lets every trial run at least this many rounds
    max_concurrent: int = 1  # trials at once (each holds a learner worker and a scorer)
    # best = the fastest finished trial within this many points of the reference's validation accuracy
    choose_within_pt: float = 0.5
    # the reference: none (the best trial's accuracy) | full (the search first runs `full` on the same
    # schedule; objective target_val_acc then compares like with like: a target on each strategy's labels)
    reference: str = "none"
    space: dict = field(default_factory=dict)


def parse_section(raw: Any) -> TuneSection:
    raw = dict(raw or {})
    space = raw.pop("space", None) or {}
    if not isinstance(space, dict):
        raise ConfigError("tune.space must map config keys to distributions, e.g. memory.ratio: {uniform: [0.25, 2]}")
    section = build_section(TuneSection, raw, "tune")
    if section.objective in RENAMED:
        raise ConfigError(
            f"tune.objective {section.objective} chose on test accuracy; searches now choose on the validation "
            f"split (data.validation): write {RENAMED[section.objective]}"
        )
    if section.objective not in OBJECTIVES:
        raise ConfigError(
            f"tune.objective '{section.objective}' is not a metric the trials report: choose {' or '.join(OBJECTIVES)}"
        )
    if section.reference not in REFERENCES:
        raise ConfigError(f"tune.reference '{section.reference}': choose {' or '.join(REFERENCES)}")
    if section.reference == "full" and section.objective != "target_val_acc":
        raise ConfigError(
            "tune.reference full compares each trial's target with full's, so it needs "
            "tune.objective target_val_acc (the proxy's accuracy is not comparable with full's target)"
        )
    if section.scheduler not in ("asha", "none"):
        raise ConfigError(f"tune.scheduler '{section.scheduler}': choose asha or none")
    for key in ("num_samples", "grace_rounds", "max_concurrent"):
        if getattr(section, key) < 1:
            raise ConfigError(f"tune.{key} = {getattr(section, key)} must be at least 1")
    if section.choose_within_pt < 0:
        raise ConfigError(f"tune.choose_within_pt = {section.choose_within_pt} is negative: use 0 or more")
    return TuneSection(**{**section.__dict__, "space": space})


def parse_space(space: dict, base_raw: dict) -> list[Param]:
    """The parameters, each checked against the run config it will be applied to."""
    if not space:
        raise ConfigError(
            "tune.space is empty: name at least one key to search, e.g. update.steps: {randint: [50, 400]}"
        )
    params = []
    for key, spec in space.items():
        where = f"tune.space.{key}"
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
            raise ConfigError(f"{where}: write exactly one of {', '.join(f'{k}: [...]' for k in KINDS)}")
        kind, values = next(iter(spec.items()))
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"{where}: {kind} needs a non-empty list")
        if kind != "choice":
            if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise ConfigError(f"{where}: {kind} needs [low, high], two numbers")
            low, high = values
            if not low < high:
                raise ConfigError(
                    f"{where}: {kind} [{low}, {high}] is empty or inverted: write [low, high] with low < high"
                )
            if kind == "loguniform" and low <= 0:
                raise ConfigError(f"{where}: loguniform needs low > 0, got {low}")
            if kind == "randint" and not all(isinstance(v, int) for v in values):
                raise ConfigError(f"{where}: randint needs integer ends, got {values}")
            # Ray's randint excludes high: the largest value a trial can see is high - 1
            ends = (low, high - 1) if kind == "randint" else (low, high)
        else:
            ends = tuple(values)
        for value in ends:
            apply(base_raw, {key: value}, where=where)
        params.append(Param(key=key, kind=kind, values=tuple(values)))
    return params


def apply(base_raw: dict, values: dict[str, Any], where: str = "tune") -> RunConfig:
    """The run config with `values` (config key -> value) set; a ConfigError names the key."""
    raw, key = copy.deepcopy(base_raw), None
    try:
        for key, value in values.items():
            set_path(raw, key, value)
        config = config_from_raw(raw)
        check_names(config)
        return config
    except ConfigError as exc:
        message = str(exc)
        if key is not None and message.startswith("unknown config key"):
            raise ConfigError(f"{where}: '{key}' is not a run config key ({message})") from None
        raise ConfigError(f"{where}: {message}") from None
