"""Where the pipeline asks Ray for resources: one place, since these APIs keep changing.

GPUs under `auto`: when the cluster has GPUs, every scoring actor and every learner worker
asks for half of one. A round alternates scoring and training, so the learner and the
scorers can share a GPU without slowing each other; on a 1-GPU machine a whole-GPU learner
would otherwise starve the scorers forever.
"""
from __future__ import annotations

from pathlib import Path

import ray
import yaml

from pipeline.config import LearnerConfig, RunConfig, ScoringConfig
from pipeline.errors import ConfigError

AUTO_GPU_SHARE = 0.5
# Written by the cluster launcher on the head node; lists the node types the autoscaler may add.
AUTOSCALER_CONFIG = Path("~/ray_bootstrap_config.yaml").expanduser()


def gpus_available() -> bool:
    """The cluster has GPUs now, or its autoscaler can add nodes that have them."""
    return float(ray.cluster_resources().get("GPU", 0.0)) > 0 or any(
        t.get("resources", {}).get("GPU", 0) > 0 for t in autoscaler_node_types().values())


def scoring_gpus(scoring: ScoringConfig, with_gpus: bool) -> float:
    if scoring.gpus_per_actor == "auto":
        return AUTO_GPU_SHARE if with_gpus else 0.0
    return float(scoring.gpus_per_actor)


def learner_gpus(learner: LearnerConfig, with_gpus: bool) -> float:
    """GPUs per learner worker (0 = CPU)."""
    if learner.use_gpu == "auto":
        return AUTO_GPU_SHARE if with_gpus else 0.0
    return float(learner.gpus_per_worker) if learner.use_gpu else 0.0


def process_requests(config: RunConfig, with_gpus: bool) -> dict[str, dict[str, float]]:
    """What one scoring actor and one learner worker ask Ray for."""
    return {
        "scoring actor": {"CPU": config.scoring.cpus_per_actor, "GPU": scoring_gpus(config.scoring, with_gpus)},
        "learner worker": {"CPU": config.learner.cpus_per_worker, "GPU": learner_gpus(config.learner, with_gpus)},
    }


def unplaceable(requests: dict[str, dict[str, float]], nodes: list[dict[str, float]]) -> list[str]:
    """The processes of `requests` that fit on none of the node shapes `nodes`, with why."""
    problems = []
    for process, need in requests.items():
        if not any(all(node.get(k, 0.0) >= v for k, v in need.items() if v > 0) for node in nodes):
            wanted = ", ".join(f"{v:g} {k}" for k, v in need.items() if v > 0)
            problems.append(f"one {process} asks for {wanted} but no node has or can add that much")
    return problems


@ray.remote(num_cpus=0)
def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def gpu_has_cuda(gpus: float, timeout_s: float = 900) -> bool:
    """Whether a process holding `gpus` of a GPU can really use CUDA.

    False on a CPU-only machine started with logical GPUs (`ray start --num-gpus`). On an
    autoscaling cluster this waits for a GPU node, which the learner needs anyway.
    """
    return ray.get(_cuda_available.options(num_gpus=gpus).remote(), timeout=timeout_s)


def scorer_resources(config: RunConfig) -> dict:
    """Ray actor options for what one scoring actor asks for (as `process_requests` reports it)."""
    need = process_requests(config, gpus_available())["scoring actor"]
    return {"num_cpus": need["CPU"], "num_gpus": need["GPU"]}


def read_args(scoring: ScoringConfig) -> dict:
    """Read tasks take a fraction of a CPU: at 1 CPU each they starve the actors on small machines."""
    return {"num_cpus": min(scoring.cpus_per_actor, 0.5)}


def check_fits(config: RunConfig, runs: int = 1) -> None:
    """Refuse, before any round, resource requests the cluster can never satisfy.

    - a scoring actor or learner worker that fits on no node (nor on any node type the
      autoscaler can add) would wait forever;
    - on a cluster that cannot grow, the learners' workers and the scorers of `runs` runs at once
      (Tune's concurrent trials) hold their CPUs and GPUs for the whole run, so Ray Data's file
      listing (a whole CPU) must fit beside them.
    """
    requests = process_requests(config, gpus_available())
    node_types = autoscaler_node_types()
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")] + [t.get("resources", {}) for t in node_types.values()]
    problems = unplaceable(requests, nodes)
    if problems:
        raise ConfigError(f"{problems[0]}: lower scoring.gpus_per_actor / learner.gpus_per_worker (or use auto), "
                          "or add a node type that has it to the cluster")
    if node_types:
        return  # the autoscaler adds nodes for whatever does not fit now
    total = ray.cluster_resources()
    learner, scorer = requests["learner worker"], requests["scoring actor"]
    each = f" in each of {runs} concurrent trials" if runs > 1 else ""
    fewer = ", or tune.max_concurrent" if runs > 1 else ""
    reserved_cpus = runs * (config.learner.workers * learner["CPU"] + config.scoring.actors * scorer["CPU"])
    if total.get("CPU", 0.0) - reserved_cpus < 1.0:
        raise ConfigError(
            f"the learner ({config.learner.workers} x {learner['CPU']:g} CPU) and the scorers "
            f"({config.scoring.actors} x {scorer['CPU']:g} CPU){each} reserve {reserved_cpus:g} of the cluster's "
            f"{total.get('CPU', 0.0):g} CPUs, leaving less than the 1 CPU Ray Data needs to read the pool: lower "
            f"learner.cpus_per_worker or scoring.cpus_per_actor{fewer}")
    reserved_gpus = runs * (config.learner.workers * learner["GPU"] + config.scoring.actors * scorer["GPU"])
    if reserved_gpus > total.get("GPU", 0.0):
        raise ConfigError(
            f"the learner and the scorers{each} reserve {reserved_gpus:g} GPUs but the cluster has "
            f"{total.get('GPU', 0.0):g} and cannot grow: lower learner.workers, scoring.actors or their GPU shares "
            f"(auto shares one GPU){fewer}")


def autoscaler_node_types() -> dict:
    """Node types the autoscaler may launch, when this driver runs on a launcher-made head."""
    try:
        return yaml.safe_load(AUTOSCALER_CONFIG.read_text()).get("available_node_types", {}) or {}
    except (OSError, AttributeError, yaml.YAMLError):
        return {}
