"""Where the pipeline asks Ray for resources: one place, since these APIs keep changing.

GPUs under `auto`: when the cluster has GPUs, every scoring actor and every learner worker
asks for half of one. A round alternates scoring and training, so the learner and the
scorers can share a GPU without slowing each other; on a 1-GPU machine a whole-GPU learner
would otherwise starve the scorers forever.
"""

from __future__ import annotations

import os
from pathlib import Path

import ray
import yaml

from pipeline.config.run_config import LearnerConfig, RunConfig, ScoringConfig
from pipeline.errors import ConfigError
from pipeline.storage import is_uri

AUTO_GPU_SHARE = 0.5
FIXED_CLUSTER_NO_PROGRESS_S = 600.0
# Written by the cluster launcher on the head node; lists the node types the autoscaler may add.
AUTOSCALER_CONFIG = Path("~/ray_bootstrap_config.yaml").expanduser()


def gpus_available() -> bool:
    """The cluster has GPUs now, or its autoscaler can add nodes that have them."""
    return float(ray.cluster_resources().get("GPU", 0.0)) > 0 or any(
        t.get("resources", {}).get("GPU", 0) > 0 for t in autoscaler_node_types().values()
    )


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
    """What one scoring actor and one learner worker ask Ray for: CPU, GPU and any custom resources."""
    return {
        "scoring actor": {
            "CPU": config.scoring.cpus_per_actor,
            "GPU": scoring_gpus(config.scoring, with_gpus),
            **config.scoring.resources,
        },
        "learner worker": {
            "CPU": config.learner.cpus_per_worker,
            "GPU": learner_gpus(config.learner, with_gpus),
            **config.learner.resources,
        },
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
    need = dict(process_requests(config, gpus_available())["scoring actor"])
    return {"num_cpus": need.pop("CPU"), "num_gpus": need.pop("GPU"), "resources": need}


def read_args(scoring: ScoringConfig) -> dict:
    """Read tasks take a fraction of a CPU: at 1 CPU each they starve the actors on small machines."""
    return {"num_cpus": min(scoring.cpus_per_actor, 0.5)}


def no_progress_timeout() -> float:
    """How long a scoring pass may make no progress before it ends with one line (actors.scorer):
    RAY_DATA_EXECUTION_NO_PROGRESS_TIMEOUT_S when set; on a cluster that cannot grow, ten minutes
    (no block moved for that long means no read task found room); where the autoscaler may add
    nodes, Ray Data's own default, which leaves time for a node to come up."""
    if "RAY_DATA_EXECUTION_NO_PROGRESS_TIMEOUT_S" in os.environ:
        return float(os.environ["RAY_DATA_EXECUTION_NO_PROGRESS_TIMEOUT_S"])
    from ray.data.context import DEFAULT_EXECUTION_NO_PROGRESS_TIMEOUT_S

    return DEFAULT_EXECUTION_NO_PROGRESS_TIMEOUT_S if autoscaler_node_types() else FIXED_CLUSTER_NO_PROGRESS_S


def check_fits(config: RunConfig, runs: int = 1) -> None:
    """Refuse, before any round, resource requests the cluster can never satisfy, and a prepared pool
    that only one node would find (a relative data.cache_dir on a cluster of several).

    - a scoring actor or learner worker that fits on no node (nor on any node type the
      autoscaler can add) would wait forever;
    - on a cluster that cannot grow, the learners' workers and the scorers of `runs` runs at once
      (Tune's concurrent trials) hold their CPUs and GPUs for the whole run, node by node, so a
      read task of the pool (read_args' CPU share) must still fit on some node beside them.
      Placed first-fit, largest first, as Ray packs; a placement Ray spreads differently only
      leaves more room per node. A pass that still finds no room ends at the no-progress
      timeout with one line (actors.scorer), instead of waiting.
    """
    requests = process_requests(config, gpus_available())
    node_types = autoscaler_node_types()
    # largest first, so the placement below and the messages do not depend on the order Ray lists nodes in
    live = sorted(
        (dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")),
        key=lambda node: (node.get("CPU", 0.0), node.get("GPU", 0.0)),
        reverse=True,
    )
    check_shared_cache(config.data.cache_dir, len(live), bool(node_types))
    problems = unplaceable(requests, live + [t.get("resources", {}) for t in node_types.values()])
    if problems:
        raise ConfigError(
            f"{problems[0]}: lower scoring.gpus_per_actor / learner.gpus_per_worker (or use auto), "
            "drop what no node has from scoring.resources / learner.resources, "
            "or add a node type that has it to the cluster"
        )
    if node_types:
        return  # the autoscaler adds nodes for whatever does not fit now
    check_room_to_read(config, requests, live, runs)


def check_shared_cache(cache_dir: str, nodes: int, autoscaler: bool) -> None:
    """A relative data.cache_dir is refused on a cluster of several nodes (or one that may grow)."""
    if (nodes > 1 or autoscaler) and not os.path.isabs(cache_dir) and not is_uri(cache_dir):
        raise ConfigError(
            f"data.cache_dir {cache_dir} is a relative path, and this cluster has "
            f"{'an autoscaler' if autoscaler else f'{nodes} nodes'}: each node would look for "
            "the prepared pool in its own working directory; set data.cache_dir to a path every node "
            "shares (e.g. an NFS mount)"
        )


def check_room_to_read(
    config: RunConfig, requests: dict[str, dict[str, float]], live: list[dict[str, float]], runs: int
) -> None:
    """On a cluster that cannot grow: the learners and scorers of `runs` runs, placed first-fit on the
    `live` nodes (largest first), must all fit and leave a read task's CPU share on some node."""
    learner, scorer = requests["learner worker"], requests["scoring actor"]
    each = f" in each of {runs} concurrent trials" if runs > 1 else ""
    fewer = ", or tune.max_concurrent" if runs > 1 else ""
    held = (
        f"the learner ({config.learner.workers} x {describe(learner)}) and the scorers "
        f"({config.scoring.actors} x {describe(scorer)}){each}"
    )
    processes = runs * ([learner] * config.learner.workers + [scorer] * config.scoring.actors)
    free = first_fit(processes, live)
    shapes = ", ".join(f"{node.get('CPU', 0.0):g} CPU/{node.get('GPU', 0.0):g} GPU" for node in live)
    if free is None:
        raise ConfigError(
            f"{held} do not all fit on the cluster's nodes ({shapes}): lower learner.workers, "
            f"scoring.actors or their CPU and GPU shares{fewer}"
        )
    read_cpus = read_args(config.scoring)["num_cpus"]
    if max(node.get("CPU", 0.0) for node in free) < read_cpus:
        reserved = sum(p["CPU"] for p in processes)
        total = sum(node.get("CPU", 0.0) for node in live)
        raise ConfigError(
            f"{held} reserve {reserved:g} of the cluster's {total:g} CPUs, leaving no node with the "
            f"{read_cpus:g} CPU a read task of the pool needs (nodes: {shapes}): lower learner.cpus_per_worker or "
            f"scoring.cpus_per_actor{fewer}"
        )


def describe(need: dict[str, float]) -> str:
    """A request as "0.5 CPU, 0.5 GPU, 1 spot" (CPU always, the others when asked for)."""
    return ", ".join(f"{value:g} {key}" for key, value in need.items() if value > 0 or key == "CPU")


def first_fit(processes: list[dict[str, float]], nodes: list[dict[str, float]]) -> list[dict[str, float]] | None:
    """What each node has left once `processes` ({"CPU", "GPU"} each) are placed first-fit, largest
    first; None when one fits on no node. Pure: no Ray."""
    free = [dict(node) for node in nodes]
    for need in sorted(processes, key=lambda p: (p.get("CPU", 0.0), p.get("GPU", 0.0)), reverse=True):
        node = next((n for n in free if all(n.get(k, 0.0) >= v - 1e-9 for k, v in need.items() if v > 0)), None)
        if node is None:
            return None
        for key, value in need.items():
            node[key] = node.get(key, 0.0) - value
    return free


def autoscaler_node_types() -> dict:
    """Node types the autoscaler may launch, when this driver runs on a launcher-made head."""
    try:
        return yaml.safe_load(AUTOSCALER_CONFIG.read_text()).get("available_node_types", {}) or {}
    except (OSError, AttributeError, yaml.YAMLError):
        return {}
