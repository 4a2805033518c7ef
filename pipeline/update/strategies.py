"""Update strategies: after each round, what to train, from where, on which labels, how long.

Strategies differ only here; scoring, selection and labelling are shared. Pure numpy.
Round 0 is the initial random set: every strategy trains its selection model from scratch on
it with that model's schedule.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from pipeline.config.run_config import RunConfig
from pipeline.registry import Registry
from pipeline.update.memory import ReplayMemory, create_memory

STRATEGIES: Registry[type[UpdateStrategy]] = Registry("strategy")


def create_strategy(config: RunConfig, max_round_size: int) -> UpdateStrategy:
    return STRATEGIES.get(config.strategy)(config, max_round_size)


def selection_model(config: RunConfig) -> str:
    """The name of the model that scores the pool under `config.strategy` (the proxy, or the target)."""
    return getattr(config, STRATEGIES.get(config.strategy).selection_role).name


@dataclass(frozen=True)
class UpdatePlan:
    role: str  # "proxy" or "target": which model the update trains
    warm_start: bool  # continue the live model and its optimizer, or start fresh
    train_ids: np.ndarray  # pool ids to train on (may repeat when memories draw with replacement)
    steps: int  # optimizer steps
    batch_size: int
    lr: float  # one-cycle peak


def steps_for_epochs(num_examples: int, epochs: int, batch_size: int) -> int:
    return epochs * math.ceil(num_examples / batch_size)


class UpdateStrategy(ABC):
    name: str
    selection_role = "proxy"  # the model that scores the pool

    def __init__(self, config: RunConfig, max_round_size: int):
        self.config = config

    def plan(
        self,
        round_index: int,
        new_ids: np.ndarray,
        new_labels: np.ndarray,
        labelled_ids: np.ndarray,
        rng: np.random.Generator,
    ) -> UpdatePlan:
        """new_ids/new_labels: this round's labels; labelled_ids: all labels, new ones included."""
        if round_index == 0:
            plan = self.from_scratch(self.selection_role, labelled_ids)
            self.observe(new_ids, new_labels, rng)
            return plan
        return self._plan(new_ids, new_labels, labelled_ids, rng)

    @abstractmethod
    def _plan(self, new_ids, new_labels, labelled_ids, rng) -> UpdatePlan: ...

    def observe(self, new_ids: np.ndarray, new_labels: np.ndarray, rng: np.random.Generator) -> None:  # noqa: B027
        """Record labels in whatever state the strategy keeps (its memory)."""

    def from_scratch(self, role: str, train_ids: np.ndarray) -> UpdatePlan:
        model = getattr(self.config, role)
        return UpdatePlan(
            role=role,
            warm_start=False,
            train_ids=np.asarray(train_ids, dtype=np.int64),
            steps=steps_for_epochs(len(train_ids), model.epochs, model.batch_size),
            batch_size=model.batch_size,
            lr=model.lr,
        )

    def warm(self, train_ids: np.ndarray) -> UpdatePlan:
        return UpdatePlan(
            role="proxy",
            warm_start=True,
            train_ids=np.asarray(train_ids, dtype=np.int64),
            steps=self.config.update.steps,
            batch_size=self.config.proxy.batch_size,
            lr=self.config.update.lr,
        )

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:  # noqa: B027  (a stateless strategy has none)
        pass


@STRATEGIES.register("full")
class FullRetrain(UpdateStrategy):
    """The fully-trained baseline: the target, from scratch, on every label, its whole schedule."""

    selection_role = "target"

    def _plan(self, new_ids, new_labels, labelled_ids, rng):
        return self.from_scratch("target", labelled_ids)


@STRATEGIES.register("svp")
class SelectionViaProxy(UpdateStrategy):
    """Selection via Proxy: the small proxy, from scratch, on every label, its whole schedule."""

    def _plan(self, new_ids, new_labels, labelled_ids, rng):
        return self.from_scratch("proxy", labelled_ids)


@STRATEGIES.register("finetune")
class Finetune(UpdateStrategy):
    """Ablation: warm start on the new labels only; forgets what replay would keep."""

    def _plan(self, new_ids, new_labels, labelled_ids, rng):
        return self.warm(new_ids)


@STRATEGIES.register("clactive")
class CLActive(UpdateStrategy):
    """Warm start on new labels plus an episodic replay of earlier ones, a constant step budget."""

    def __init__(self, config: RunConfig, max_round_size: int):
        super().__init__(config, max_round_size)
        self.memory: ReplayMemory = create_memory(
            config.memory.policy,
            capacity=self.replay_size(max_round_size),
            with_replacement=config.memory.with_replacement,
        )

    def replay_size(self, round_size: int) -> int:
        if self.config.memory.count is not None:
            return self.config.memory.count
        return int(round(self.config.memory.ratio * round_size))

    def _plan(self, new_ids, new_labels, labelled_ids, rng):
        # As the authors do: the replay is drawn from the labels held *before* this round.
        replay_ids = self.memory.sample(self.replay_size(len(new_ids)), rng)
        self.observe(new_ids, new_labels, rng)
        return self.warm(np.concatenate([np.asarray(new_ids, dtype=np.int64), replay_ids]))

    def observe(self, new_ids, new_labels, rng):
        self.memory.add(new_ids, new_labels, rng)

    def state_dict(self):
        return self.memory.state_dict()

    def load_state_dict(self, state):
        self.memory.load_state_dict(state)
