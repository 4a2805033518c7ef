"""The Ray Train worker's side of the learner (actors.learner starts the worker group): serve one
update per job from the mailbox, with the live models kept between warm-started jobs.

torch is imported here and nowhere on the coordinator's side: only the processes that train load
it (seconds of CPU and a few hundred MB each on the coordinator and on Ray Train's controller).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import ray
import ray.train
import torch
from torch.nn.parallel import DistributedDataParallel

from actors.faults import Hook
from actors.progress import Reporter
from actors.ray_private import quiet_train_report_log
from pipeline.config.run_config import ModelConfig
from pipeline.data import PreparedData, read_rows
from pipeline.loop.proc import peak_rss_mib
from pipeline.update.evaluation import EpochCurve, Split, evaluate
from pipeline.update.models import create_model
from pipeline.update.strategies import UpdatePlan
from pipeline.update.training import (
    checkpoint_bytes,
    load_optimizer,
    load_weights,
    make_optimizer,
    torch_threads,
    train_steps,
)


def learner_loop(loop_config: dict) -> None:
    """Ray Train worker: serve jobs until the mailbox says stop (a None job)."""
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    mailbox = loop_config["mailbox"]
    if rank == 0:
        Hook(loop_config["hook"], loop_config["run_dir"]).starting("train")
    # Logical GPUs alone (a CPU-only machine told it has GPUs) must never make torch try CUDA.
    cuda = bool(ray.get_gpu_ids()) and torch.cuda.is_available()
    device = ray.train.torch.get_device() if cuda else torch.device("cpu")
    torch.set_num_threads(torch_threads(world_size))
    quiet_train_report_log()
    evaluated = {split: _split(ray.get(refs[0])) for split, refs in loop_config["evaluated"].items()}
    live: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]] = {}  # by role, between warm-started jobs
    seq = ray.get(mailbox.first_unfinished.remote())
    while (job := ray.get(mailbox.get_job.remote(seq))) is not None:
        if rank == 0:
            Hook(loop_config["hook"], loop_config["run_dir"], job["round"]).at("train")
        result, trained = _serve(job, loop_config, live, evaluated, device, rank, world_size)
        if rank == 0:
            ray.get(mailbox.put_result.remote(seq, result))
        ray.train.report({"job": seq, "role": job["plan"].role, **trained})
        seq += 1


def _serve(
    job: dict,
    loop_config: dict,
    live: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]],
    evaluated: dict[str, Split],
    device: torch.device,
    rank: int,
    world_size: int,
) -> tuple[dict, dict]:
    """One job on this worker: read its rows by id, train, and on rank 0 evaluate and checkpoint
    (a from-scratch fit on rank 0 also after every epoch, on validation).
    Returns (the job's result for the mailbox, the training figures every rank reports)."""
    plan: UpdatePlan = job["plan"]
    data: PreparedData = loop_config["data"]
    start = time.perf_counter()
    train_ids, labels = ray.get(job["train"][0])
    images, label_tensor = _tensors((read_rows(job["rows_from"], train_ids, data.image_shape)[0], labels))
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    if not plan.warm_start or plan.role not in live:
        live[plan.role] = _new_model(loop_config["models"][plan.role], data, plan, job, device, world_size)
    model, optimizer = live[plan.role]
    report = Reporter(job.get("progress") if rank == 0 else None, "train")
    curve = _curve(plan, _bare(model), evaluated.get("validation"), data, device, len(train_ids)) if rank == 0 else None
    trained = train_steps(
        model,
        optimizer,
        images,
        label_tensor,
        steps=plan.steps,
        batch_size=plan.batch_size,
        lr=plan.lr,
        mean=data.mean,
        std=data.std,
        generator=torch.Generator().manual_seed(job["seed"]),
        device=device,
        rank=rank,
        world_size=world_size,
        augment=loop_config["augment"],
        on_step=report if curve is None else _both(report, curve),
    )
    report(int(trained["steps"]), final=True)
    curve_s = 0.0 if curve is None else curve.seconds  # evaluation inside the fit: not training
    train_s = time.perf_counter() - start - curve_s
    if rank != 0:
        return {}, trained
    bare, final = _bare(model), None if curve is None else curve.final  # final: validation, predicted already
    start = time.perf_counter()
    result = {
        **trained,
        **evaluate(bare, evaluated["test"], evaluated.get("validation"), data, device, final),
        "val_acc_per_epoch": None if curve is None else curve.accuracies,
        "eval_s": time.perf_counter() - start + curve_s,
        "device": str(device),
        "read_s": read_s,
        "train_s": train_s,
        "peak_rss_mib": peak_rss_mib(),
        "checkpoint": checkpoint_bytes(bare, optimizer),
    }
    return result, trained


def _new_model(
    model_config: ModelConfig, data: PreparedData, plan: UpdatePlan, job: dict, device: torch.device, world_size: int
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The plan's model and optimizer from the job's seed, or from its checkpoint when it resumes one."""
    torch.manual_seed(job["seed"])
    model = create_model(model_config.name, data.image_shape[0], data.num_classes)
    checkpoint = ray.get(job["resume_from"][0]) if plan.warm_start and job["resume_from"] else None
    if checkpoint:
        load_weights(model, checkpoint)
    model = model.to(device)
    optimizer = make_optimizer(model, model_config, lr=plan.lr)
    if checkpoint:
        load_optimizer(optimizer, checkpoint)
    if world_size > 1:
        model = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    return model, optimizer


def _curve(
    plan: UpdatePlan,
    model: torch.nn.Module,
    validation: Split | None,
    data: PreparedData,
    device: torch.device,
    examples: int,
) -> EpochCurve | None:
    """A from-scratch fit's per-epoch validation curve; None for a warm update, or without validation."""
    if validation is None or plan.warm_start:
        return None
    return EpochCurve(model, validation, data, device, examples, plan.batch_size, plan.steps)


def _both(first: Callable[[int], None], second: Callable[[int], None]) -> Callable[[int], None]:
    def both(taken: int) -> None:
        first(taken)
        second(taken)

    return both


def _bare(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _split(arrays: tuple[np.ndarray, np.ndarray]) -> Split:
    images, labels = arrays
    return Split(_tensors((images,))[0], np.asarray(labels))


def _tensors(arrays) -> tuple[torch.Tensor, ...]:
    # Arrays from the object store are read-only views, and torch wants memory it may write: those are
    # copied. The update's rows (read_rows) are the worker's own: no second copy of gigabytes.
    return tuple(torch.from_numpy(a if a.flags.writeable else np.array(a)) for a in arrays)
