"""The learner's mailbox: jobs for the Ray Train worker group and their results.

In a module of its own that does not import torch (the jobs it holds need only numpy): the mailbox
is a process of its own, and on two cores a torch import costs every run seconds.
"""

from __future__ import annotations

import asyncio

import ray


@ray.remote(num_cpus=0)
class Mailbox:
    """Jobs for the worker group and their results, both keyed by a sequence number."""

    def __init__(self) -> None:
        self.jobs: dict[int, dict | None] = {}
        self.results: dict[int, dict] = {}
        self.unfinished = 0  # the first job without a result: where a restarted worker group starts
        self.changed = asyncio.Condition()

    async def first_unfinished(self) -> int:
        return self.unfinished

    async def put_job(self, seq: int, job: dict | None) -> None:
        async with self.changed:
            self.jobs[seq] = job
            self.changed.notify_all()

    async def get_job(self, seq: int) -> dict | None:
        async with self.changed:
            await self.changed.wait_for(lambda: seq in self.jobs)
            return self.jobs[seq]

    async def put_result(self, seq: int, result: dict) -> None:
        async with self.changed:
            self.jobs.pop(seq, None)
            self.results[seq] = result
            self.unfinished = seq + 1
            self.changed.notify_all()

    async def get_result(self, seq: int) -> dict:
        async with self.changed:
            await self.changed.wait_for(lambda: seq in self.results)
            return self.results.pop(seq)
