"""Typed run configuration: YAML plus `--set a.b=c` overrides, validated once at load.

Sizes follow one rule everywhere: a float in (0, 1] is a fraction (of the pool, or of the
round size for the memory ratio), an int >= 1 is an absolute count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.config.sections import apply_overrides, build_section, read_yaml, set_path
from pipeline.errors import ConfigError

Size = int | float
Auto = str | float  # "auto" or a number


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "fashion_mnist"  # a registered source, see pipeline.data
    data_dir: str = "/usr/share/datasets/fashion-mnist"
    cache_dir: str = ".cache/clactive"  # Parquet shards are written here once
    shard_rows: int = 10_000  # rows per Parquet shard (one Ray Data block each)
    augment: str = "auto"  # in training only: auto (the source's default) | none | flip | crop_flip |
    # resized_crop_flip; scoring and evaluation never augment
    image_size: int = 224  # imagefolder, encoded Parquet images: short side resized, centre-cropped square
    skip_corrupt: bool = False  # imagefolder, Parquet: skip (and list) undecodable images instead of stopping
    feature_column: str = "image"  # parquet: encoded image bytes, or C*H*W uint8 pixels with data.image_shape
    label_column: str = "label"  # parquet: integer class labels in [0, K); text_csv: integers or strings
    text_column: str | None = None  # text_csv: the text column (default "text"); parquet: a string column of text
    id_column: str | None = None  # parquet: stable non-negative int64 ids (default: row positions)
    image_shape: tuple[int, ...] | None = None  # parquet pixel lists: (C, H, W)
    max_tokens: int = 128  # amazon_review_*: hashed words kept per review (title, then text)
    # A validation split held out of the pool (a fraction or a count; 0: none), never selected, its labels
    # known: the small labelled dev set every choice is made on (stops, Tune, schedules); test only reports.
    # A source with a validation file of its own (parquet, text_csv) uses it instead.
    validation: Size = 0
    validation_seed: int = 0  # draws the held-out ids: the same for every run seed and strategy


@dataclass(frozen=True)
class ModelConfig:
    name: str = "small_cnn"
    epochs: int = 10  # from-scratch schedule: epochs over the whole training set
    batch_size: int = 128
    lr: float = 0.1  # peak of the one-cycle learning-rate schedule
    momentum: float = 0.9
    weight_decay: float = 5e-4


@dataclass(frozen=True)
class ScheduleConfig:
    initial: Size = 0.02  # random initial labelled set
    round_ends: tuple[Size, ...] = (0.04, 0.06, 0.08)  # labelled total after each round
    round_size: Size | None = None  # or: `rounds` rounds of this size
    rounds: int | None = None


@dataclass(frozen=True)
class MemoryConfig:
    policy: str = "random"  # random | class_balanced | reservoir
    ratio: float = 1.0  # replay size as a multiple of the round size (paper: 1)
    count: int | None = None  # or a fixed replay size; overrides ratio
    with_replacement: bool = False  # the authors' code draws with replacement


@dataclass(frozen=True)
class UpdateConfig:
    """The warm-start update of `clactive` and `finetune`: the same step count every round."""

    steps: int = 200
    lr: float = 0.05  # one-cycle peak, restarted every round


@dataclass(frozen=True)
class ScoringConfig:
    batch_size: int = 256
    actors: int = 1  # scoring actors, started once and kept for the whole run
    cpus_per_actor: float = 0.5
    gpus_per_actor: Auto = "auto"  # auto: half a GPU when the cluster has GPUs (shared with the learner)
    candidates: Size | None = None  # score a seeded random subset of the unlabelled pool each round (a count,
    # or a fraction of the unlabelled pool); None: all of it (the paper)
    candidates_from: str = "random"  # random: a uniform draw | neighbours: near the labelled set (SEALS)
    neighbours: int = 100  # candidates_from neighbours: nearest neighbours per labelled example
    resources: dict[str, float] = field(default_factory=dict)  # custom Ray resources per actor (pins to node types)
    placement_timeout_s: float = 600.0  # how long a scorer lost with its node waits for a node with room again


@dataclass(frozen=True)
class BatchConfig:
    """How a round's batch is drawn from the acquisition's scores (pipeline.selection.batch)."""

    sampling: str = "top_k"  # top_k | softmax | power | softrank: the top k of Gumbel-perturbed scores
    coldness: float = 1.0  # β of p ∝ exp(β·score), score^β or rank^-β
    balance: bool = False  # the batch taken round-robin over the selection model's predicted classes
    margin_multiple: float | None = None  # cluster_margin: shortlist margin_multiple * k (None: the paper's 10)


@dataclass(frozen=True)
class LearnerConfig:
    workers: int = 1
    cpus_per_worker: float = 0.5
    use_gpu: str | bool = "auto"  # auto: half a GPU per worker when the cluster has GPUs
    gpus_per_worker: float = 1.0  # when use_gpu is true
    max_failures: int = 3  # worker-group restarts Ray Train may make during a run
    resources: dict[str, float] = field(default_factory=dict)  # custom Ray resources per worker (pins to node types)
    placement_timeout_s: float = 600.0  # how long the worker group waits for nodes with room (at start, after a loss)


@dataclass(frozen=True)
class PoolConfig:
    """How the pool grows between rounds (see pipeline.data.growth)."""

    growth: str = "static"  # static | class_incremental | arrivals
    class_order: tuple[int, ...] | None = None  # class_incremental: arrival order (default 0, 1, ..., K-1)
    initial_classes: int = 2  # class_incremental: classes in the pool at round 0
    classes_per_round: int = 2  # class_incremental: classes that join every round
    arrivals_dir: str | None = None  # arrivals: new Parquet shards here join before each round


@dataclass(frozen=True)
class StopConfig:
    """One stopping criterion (pipeline.loop.stopping). The budget (the schedule's end) always stops a run;
    these may stop it earlier: after the first round any one of them holds."""

    criterion: str = ""  # accuracy_plateau | uncertainty | stable_predictions
    rounds: int = 2  # accuracy_plateau, stable_predictions: over the last n round-to-round changes
    epsilon: float = 0.005  # accuracy_plateau: the largest change in selection accuracy that counts as flat
    threshold: float = 0.05  # uncertainty: the chosen batch's mean acquisition score below this stops
    kappa: float = 0.99  # stable_predictions: Cohen's kappa of successive models on the stop set


ORACLES = ("simulated", "external")
CANDIDATES_FROM = ("random", "neighbours")
TRACKERS = ("mlflow", "tensorboard")


@dataclass(frozen=True)
class RunConfig:
    strategy: str = "clactive"  # full | svp | clactive | finetune
    acquisition: str = "least_confidence"
    oracle: str = "simulated"  # simulated: reveal the label column | external: ask people (pipeline.labels.requests)
    seed: int = 0
    run_dir: str = "runs/fashion_mnist"
    train_target_at_end: bool = True  # fit the target from scratch on the final labels
    data: DataConfig = field(default_factory=DataConfig)
    proxy: ModelConfig = field(default_factory=ModelConfig)
    target: ModelConfig = field(default_factory=lambda: ModelConfig(name="preact_resnet20", epochs=15))
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    stopping: tuple[StopConfig, ...] = ()  # more reasons to stop before the budget; any one stops the run
    tracking: str | None = None  # mlflow | tensorboard: log params, every round's record and the plots
    tracking_uri: str | None = None  # mlflow: a tracking URI (default: a file store inside the run directory)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --- loading -------------------------------------------------------------------------------


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (), **top_level: Any) -> RunConfig:
    """YAML file (or the defaults) + `key.sub=value` overrides + keyword overrides, validated."""
    return config_from_raw(read_yaml(path), overrides, **top_level)


def read_with_section(path: str | Path | None, overrides: Sequence[str], section: str) -> tuple[dict[str, Any], Any]:
    """A config file plus `--set` overrides, split into the run config's mapping and one more section
    (`compare:`, `tune:`) that only its own command reads: (run config mapping, the section or None)."""
    raw = read_yaml(path)
    apply_overrides(raw, overrides)
    return raw, raw.pop(section, None)


def config_from_raw(raw: dict[str, Any], overrides: Sequence[str] = (), **top_level: Any) -> RunConfig:
    raw = dict(raw)
    apply_overrides(raw, overrides)
    for key, value in top_level.items():
        if value is not None:
            set_path(raw, key, value)
    config = build_section(RunConfig, raw, "", REPLACED_KEYS)
    validate(config)
    return config


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    """Inverse of RunConfig.to_dict: how a Ray worker gets its typed config back."""
    return build_section(RunConfig, raw, "", REPLACED_KEYS)


# Keys of earlier versions, and what to write instead.
REPLACED_KEYS = {
    "scoring.min_actors": "scorers now live for the whole run, so there is one count: set scoring.actors",
    "scoring.max_actors": "scorers now live for the whole run, so there is one count: set scoring.actors",
}


# --- validation ------------------------------------------------------------------------------


def validate(config: RunConfig) -> None:
    """Range checks that need no data and no registry. Names are checked against the registries that
    own them by pipeline.loop.preflight.check_names; pool-size checks live in pipeline.config.schedule."""
    _one_of("oracle", config.oracle, list(ORACLES))
    for role in ("proxy", "target"):
        model = getattr(config, role)
        _positive(f"{role}.epochs", model.epochs)
        _positive(f"{role}.batch_size", model.batch_size)
        _positive(f"{role}.lr", model.lr)
        _at_least_zero(f"{role}.weight_decay", model.weight_decay)
        _at_least_zero(f"{role}.momentum", model.momentum)
    _check_data(config.data)
    _at_least_zero("memory.ratio", config.memory.ratio)
    if config.memory.count is not None:
        _at_least_zero("memory.count", config.memory.count)
    _positive("update.steps", config.update.steps)
    _positive("update.lr", config.update.lr)
    _check_scoring(config)
    _positive("learner.workers", config.learner.workers)
    _positive("learner.cpus_per_worker", config.learner.cpus_per_worker)
    _positive("learner.gpus_per_worker", config.learner.gpus_per_worker)
    _at_least_zero("learner.max_failures", config.learner.max_failures)
    _check_resources("learner.resources", config.learner.resources)
    _positive("learner.placement_timeout_s", config.learner.placement_timeout_s)
    if isinstance(config.learner.use_gpu, str) and config.learner.use_gpu != "auto":
        raise ConfigError(f"learner.use_gpu = {config.learner.use_gpu!r}: write true, false or auto")
    _check_schedule_shape(config.schedule)
    _positive("pool.initial_classes", config.pool.initial_classes)
    _positive("pool.classes_per_round", config.pool.classes_per_round)
    if config.pool.growth == "arrivals" and not config.pool.arrivals_dir:
        raise ConfigError("pool.growth = arrivals needs pool.arrivals_dir: the directory new Parquet shards appear in")
    for i, stop in enumerate(config.stopping):
        _positive(f"stopping[{i}].rounds", stop.rounds)
        _at_least_zero(f"stopping[{i}].epsilon", stop.epsilon)
        _at_least_zero(f"stopping[{i}].threshold", stop.threshold)
        if not -1 <= stop.kappa <= 1:
            raise ConfigError(f"stopping[{i}].kappa = {stop.kappa}: Cohen's kappa lies in [-1, 1]")
    if config.tracking is not None:
        _one_of("tracking", config.tracking, list(TRACKERS))
        if "://" in config.run_dir:
            raise ConfigError(
                f"tracking keeps its state (and MLflow's default store) in the run directory, so "
                f"run_dir {config.run_dir} must be a local path: use one, or drop tracking"
            )


def _check_scoring(config: RunConfig) -> None:
    """scoring: and batch:, how a round's candidates are scored and its batch drawn."""
    _positive("scoring.batch_size", config.scoring.batch_size)
    _positive("scoring.actors", config.scoring.actors)
    _positive("scoring.cpus_per_actor", config.scoring.cpus_per_actor)
    _auto_or_number("scoring.gpus_per_actor", config.scoring.gpus_per_actor)
    if config.scoring.candidates is not None:
        check_size("scoring.candidates", config.scoring.candidates)
    _check_resources("scoring.resources", config.scoring.resources)
    _one_of("scoring.candidates_from", config.scoring.candidates_from, list(CANDIDATES_FROM))
    _positive("scoring.neighbours", config.scoring.neighbours)
    if config.scoring.candidates_from == "neighbours" and config.pool.growth != "static":
        raise ConfigError(
            f"scoring.candidates_from neighbours indexes the pool once, and pool.growth {config.pool.growth} "
            "adds rows to it: use scoring.candidates_from random with a growing pool"
        )
    _at_least_zero("batch.coldness", config.batch.coldness)
    if config.batch.margin_multiple is not None and config.batch.margin_multiple < 1:
        raise ConfigError(f"batch.margin_multiple = {config.batch.margin_multiple}: the shortlist holds at least k")
    _positive("scoring.placement_timeout_s", config.scoring.placement_timeout_s)


def _check_data(data: DataConfig) -> None:
    _positive("data.shard_rows", data.shard_rows)
    _positive("data.image_size", data.image_size)
    _positive("data.max_tokens", data.max_tokens)
    if data.image_shape is not None:
        if len(data.image_shape) != 3 or min(data.image_shape) < 1:
            raise ConfigError(
                f"data.image_shape = {list(data.image_shape)}: write [channels, height, width], each at least 1"
            )
    if data.validation != 0:
        check_size("data.validation", data.validation)
        if data.validation == 1.0:
            raise ConfigError("data.validation = 1.0 holds out the whole pool: write a fraction below 1 or a count")
    for key in ("feature_column", "label_column", "id_column"):
        if getattr(data, key) == "":
            raise ConfigError(f"data.{key} is empty: name a column of the Parquet table")


# Resources Ray knows by itself; each has its own key here (cpus_per_actor, gpus_per_worker, ...).
BUILTIN_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")


def _check_resources(key: str, resources: dict[str, float]) -> None:
    for name, amount in resources.items():
        if name in BUILTIN_RESOURCES:
            raise ConfigError(
                f"{key}.{name}: {name} has keys of its own (cpus_per_actor / cpus_per_worker, "
                f"gpus_per_actor / gpus_per_worker); {key} is for custom resources that pin a node type"
            )
        _positive(f"{key}.{name}", amount)


def _check_schedule_shape(schedule: ScheduleConfig) -> None:
    check_size("schedule.initial", schedule.initial)
    fixed = schedule.round_size is not None or schedule.rounds is not None
    if fixed:
        if schedule.round_size is None or schedule.rounds is None:
            raise ConfigError(
                "schedule.round_size and schedule.rounds go together: set both, or use schedule.round_ends"
            )
        check_size("schedule.round_size", schedule.round_size)
        _positive("schedule.rounds", schedule.rounds)
    else:
        for i, end in enumerate(schedule.round_ends):
            check_size(f"schedule.round_ends[{i}]", end)


def _one_of(key: str, value: str, valid: list[str]) -> None:
    if value not in valid:
        raise ConfigError(f"unknown {key} '{value}': choose one of {', '.join(valid)}")


def _positive(key: str, value) -> None:
    if value <= 0:
        raise ConfigError(f"{key} = {value} must be positive")


def _at_least_zero(key: str, value) -> None:
    if value < 0:
        raise ConfigError(f"{key} = {value} is negative: use 0 or more")


def _auto_or_number(key: str, value) -> None:
    if isinstance(value, str):
        if value != "auto":
            raise ConfigError(f"{key} = {value!r}: write a number or auto")
    else:
        _at_least_zero(key, value)


def check_size(key: str, value: Size) -> None:
    """A size is a fraction in (0, 1] (float) or a count >= 1 (int)."""
    if isinstance(value, float) and not 0 < value <= 1:
        raise ConfigError(f"{key} = {value}: a fraction must lie in (0, 1]; write an integer for a count")
    if isinstance(value, int) and value < 1:
        raise ConfigError(f"{key} = {value}: a count must be at least 1")


def save_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
