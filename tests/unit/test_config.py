from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from pipeline.config.run_config import ModelConfig, RunConfig, config_from_dict, load_config
from pipeline.config.schedule import resolve_schedule
from pipeline.errors import ConfigError
from pipeline.loop.preflight import check_names

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_loads_and_equals_the_defaults_but_for_its_quicker_target_and_validation_split():
    shipped = load_config(REPO / "configs" / "fashion_mnist.yaml")
    assert shipped.target == ModelConfig(name="small_cnn", epochs=20) and shipped.data.validation == 5000
    defaults = RunConfig()
    assert replace(shipped, target=defaults.target, data=replace(shipped.data, validation=0)) == defaults


def test_overrides_parse_yaml_values_into_typed_fields():
    config = load_config(
        None,
        ["schedule.round_ends=[0.1, 0.2]", "update.steps=50", "memory.count=10", "learner.use_gpu=false", "seed=3"],
    )
    assert config.schedule.round_ends == (0.1, 0.2)
    assert (config.update.steps, config.memory.count, config.learner.use_gpu, config.seed) == (50, 10, False, 3)


def test_custom_resources_pin_scorers_and_learner_workers_by_mapping_or_by_key():
    config = load_config(None, ["scoring.resources={spot: 0.5}", "learner.resources.accelerator_type:T4=1"])
    assert config.scoring.resources == {"spot": 0.5} and config.learner.resources == {"accelerator_type:T4": 1.0}
    assert RunConfig().scoring.resources == {} == RunConfig().learner.resources


def test_config_round_trips_through_a_plain_dict():
    config = load_config(
        None, ["schedule.round_ends=[100, 200]", "scoring.gpus_per_actor=0.5", "learner.resources={spot: 1}"]
    )
    assert config_from_dict(config.to_dict()) == config
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict()))) == config


@pytest.mark.parametrize(
    "override, message",
    [
        ("strategy=bogus", "unknown strategy 'bogus'"),
        ("acquisition=bald", "unknown acquisition 'bald'"),
        ("proxy.name=vgg", "unknown proxy.name 'vgg'"),
        ("memory.policy=fifo", "unknown memory.policy 'fifo'"),
        ("data.dataset=mnist", "unknown data.dataset 'mnist'"),
        ("memory.ratio=-1", "memory.ratio = -1.0 is negative"),
        ("memory.count=-5", "memory.count = -5 is negative"),
        ("update.steps=0", "update.steps = 0 must be positive"),
        ("update.steps=1.5", "'update.steps' = 1.5 has the wrong type: expected an integer"),
        ("proxy.lr=fast", "'proxy.lr' = 'fast' has the wrong type"),
        ("schedule.initial=1.5", "a fraction must lie in (0, 1]"),
        ("schedule.round_size=100", "schedule.round_size and schedule.rounds go together"),
        ("scoring.actors=0", "scoring.actors = 0 must be positive"),
        ("scoring.gpus_per_actor=many", "write a number or auto"),
        ("learner.use_gpu=maybe", "write true, false or auto"),
        ("scoring.resources=spot", "'scoring.resources' must be a mapping of names to values"),
        ("scoring.resources={GPU: 1}", "scoring.resources.GPU: GPU has keys of its own"),
        ("learner.resources={spot: 0}", "learner.resources.spot = 0.0 must be positive"),
        ("learner.resources={spot: lots}", "'learner.resources.spot' = 'lots' has the wrong type"),
        ("learner.placement_timeout_s=0", "learner.placement_timeout_s = 0.0 must be positive"),
        ("proxy.colour=red", "unknown config key 'proxy.colour'"),
        ("nonsense", "is not key=value"),
    ],
)
def test_bad_values_are_named_in_one_line(override, message):
    """Types and ranges fail at load (pipeline.config.run_config); names against the registries at preflight."""
    with pytest.raises(ConfigError) as caught:
        check_names(load_config(None, [override]))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_missing_or_broken_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(listy)


def test_schedule_resolves_fractions_and_counts():
    config = load_config(None, ["schedule.initial=0.02", "schedule.round_ends=[0.1, 0.2, 3000]"])
    assert resolve_schedule(config.schedule, 10_000) == (200, [800, 1000, 1000])
    fixed = load_config(None, ["schedule.initial=100", "schedule.round_size=0.01", "schedule.rounds=3"])
    assert resolve_schedule(fixed.schedule, 10_000) == (100, [100, 100, 100])


def test_schedule_larger_than_the_pool_is_refused():
    config = load_config(None, ["schedule.initial=100", "schedule.round_ends=[500, 2000]"])
    with pytest.raises(ConfigError, match="asks for 2000 labels in total but the pool holds 1000"):
        resolve_schedule(config.schedule, 1000)
    with pytest.raises(ConfigError, match="not above"):
        resolve_schedule(load_config(None, ["schedule.round_ends=[0.05, 0.05]"]).schedule, 1000)
