"""A realistic multi-agent workload: runs of tasks, workers claiming them, priced model calls,
retries after transient errors, a run over its budget, a cancelled run, provider breakers."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .client import CommandClient, CommandRefused

__all__ = ["DemoReport", "run_workload"]

KINDS = ("plan", "code", "review", "search")
# (model, provider, share of calls): a typical mix of frontier, mid and small models.
MODELS = (
    ("claude-sonnet-4-5", "anthropic", 3), ("gpt-4.1", "openai", 3),
    ("gpt-4.1-mini", "openai", 4), ("gemini-2.5-flash", "google", 3),
    ("claude-opus-4-1", "anthropic", 1), ("deepseek-chat", "deepseek", 2),
)
PIPELINES = ("triage-issue", "fix-bug", "write-tests", "refactor-module", "release-notes",
             "security-review", "migrate-api", "docs-update")


@dataclass
class DemoReport:
    """What the workload did, counted from the replies it got."""

    commands: int = 0
    last_seq: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    task_ends: dict[str, str] = field(default_factory=dict)
    """Task id -> ``succeeded`` / ``failed``, learnt from the replies of the agents."""


async def run_workload(client: CommandClient, runs: int = 12, workers: int = 6,
                       seed: int = 7, deadline_s: float = 40.0) -> DemoReport:
    """Drives the whole workload to completion (or the deadline) and reports it."""
    rng = random.Random(seed)
    report = DemoReport()
    run_ids = await _start_runs(client, rng, runs)
    tasks = {run_id: await _submit_tasks(client, rng, run_id) for run_id in run_ids}
    await _cancel_one(client, run_ids[-1], report)
    pool = [f"agent-{n + 1}" for n in range(workers)]
    for worker_id in pool:
        await client.send("worker.register", worker_id=worker_id, kinds=list(KINDS), capacity=2)
    stop = asyncio.Event()
    agents = [asyncio.create_task(_agent(client, w, random.Random(seed + i), report, stop))
              for i, w in enumerate(pool)]
    await _finish_runs(client, tasks, run_ids[:-1], report, deadline_s)
    stop.set()
    await asyncio.gather(*agents)
    report.commands, report.last_seq = client.sent, client.last_seq
    return report


async def _start_runs(client: CommandClient, rng: random.Random, runs: int) -> list[str]:
    run_ids = []
    for n in range(runs):
        run_id = f"run-{n + 1:02d}-{PIPELINES[n % len(PIPELINES)]}"
        # One run gets a budget far too small for its work: it will be stopped.
        budget = {"max_cost_usd": 0.02} if n == 2 else {"max_cost_usd": 5.0}
        await client.send("run.create", run_id=run_id, name=PIPELINES[n % len(PIPELINES)],
                          labels={"team": rng.choice(("platform", "growth", "infra"))},
                          budget=budget)
        await client.send("run.start", run_id=run_id)
        run_ids.append(run_id)
    return run_ids


async def _submit_tasks(client: CommandClient, rng: random.Random, run_id: str) -> list[str]:
    ids = []
    for n in range(rng.randint(4, 7)):
        reply = await client.send("task.submit", run_id=run_id, kind=rng.choice(KINDS),
                                  priority=rng.randint(2, 8), max_attempts=3,
                                  payload={"step": n, "prompt": f"step {n} of {run_id}"})
        ids.append(reply["id"])
    return ids


async def _cancel_one(client: CommandClient, run_id: str, report: DemoReport) -> None:
    await client.send("run.cancel", run_id=run_id, reason="superseded by a newer request")
    report.outcomes["run cancelled"] += 1


async def _agent(client: CommandClient, worker_id: str, rng: random.Random,
                 report: DemoReport, stop: asyncio.Event) -> None:
    """One worker: claim, work (model calls), then succeed or fail; until told to stop."""
    while not stop.is_set():
        reply = await client.send("task.claim", worker_id=worker_id)
        task = reply.get("task")
        if task is None:
            await asyncio.sleep(0.05)
            continue
        await _work_on(client, worker_id, task, rng, report)


async def _work_on(client: CommandClient, worker_id: str, task: dict[str, Any],
                   rng: random.Random, report: DemoReport) -> None:
    lease = {"task_id": task["task_id"], "worker_id": worker_id,
             "lease_epoch": task["lease_epoch"]}
    try:
        await client.send("task.start", **lease)
        for _ in range(rng.randint(1, 4)):
            await _model_call(client, task, worker_id, rng, report)
            await client.send("task.heartbeat", **lease)
        await _finish(client, lease, rng, report)
    except CommandRefused as refused:
        report.outcomes[f"refused: {refused.code}"] += 1


async def _model_call(client: CommandClient, task: dict[str, Any], worker_id: str,
                      rng: random.Random, report: DemoReport) -> None:
    model, provider, _ = rng.choices(MODELS, weights=[m[2] for m in MODELS])[0]
    permit = await client.send("breaker.acquire", breaker_id=provider)
    if not permit["allowed"]:
        report.outcomes["call skipped: breaker open"] += 1
        return
    outcome = "ok" if rng.random() > 0.08 else rng.choice(("rate_limit", "timeout"))
    await client.send("usage.record", run_id=task["run_id"], task_id=task["task_id"],
                      worker_id=worker_id, model=model, tokens_in=rng.randint(800, 24000),
                      tokens_out=rng.randint(150, 4000), latency_ms=rng.uniform(300, 9000),
                      outcome=outcome)
    await client.send("breaker.record", breaker_id=provider,
                      outcome="success" if outcome == "ok" else "failure")
    report.outcomes[f"model call {outcome}"] += 1


async def _finish(client: CommandClient, lease: dict[str, Any], rng: random.Random,
                  report: DemoReport) -> None:
    roll = rng.random()
    if roll < 0.14:
        reply = await client.send("task.fail", **lease, error_class="rate_limit",
                                  message="429 from the provider")
        report.outcomes["task failed: rate_limit (retried)"] += 1
    elif roll < 0.19:
        reply = await client.send("task.fail", **lease, error_class="invalid_request",
                                  message="tool call schema rejected")
        report.outcomes["task failed: invalid_request"] += 1
    else:
        reply = await client.send("task.succeed", **lease, result={"summary": "done"})
        report.outcomes["task succeeded"] += 1
    if "TaskFailed" in reply["events"] or "TaskSucceeded" in reply["events"]:
        report.task_ends[lease["task_id"]] = ("failed" if "TaskFailed" in reply["events"]
                                              else "succeeded")


async def _finish_runs(client: CommandClient, tasks: dict[str, list[str]], run_ids: list[str],
                       report: DemoReport, deadline_s: float) -> None:
    """The orchestrator: once a run's tasks ended, one final review task, then close the run."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    reviewed: set[str] = set()
    open_runs = list(run_ids)
    while open_runs and loop.time() < deadline:
        await asyncio.sleep(0.1)
        for run_id in list(open_runs):
            ends = [report.task_ends.get(t) for t in tasks[run_id]]
            if None in ends:
                continue
            if run_id not in reviewed:
                reviewed.add(run_id)
                if await _submit_review(client, run_id, tasks, report):
                    continue
                ends.append("failed")
            await _close_run(client, run_id, "fail" if "failed" in ends else "succeed", report)
            open_runs.remove(run_id)
    for run_id in open_runs:
        await _close_run(client, run_id, "fail", report)


async def _submit_review(client: CommandClient, run_id: str, tasks: dict[str, list[str]],
                         report: DemoReport) -> bool:
    """Submits the run's final review task; False when the run's budget refuses it."""
    try:
        reply = await client.send("task.submit", run_id=run_id, kind="review", priority=9,
                                  payload={"prompt": f"review the output of {run_id}"})
    except CommandRefused as refused:
        report.outcomes[f"review refused: {refused.code}"] += 1
        return False
    tasks[run_id].append(reply["id"])
    return True


async def _close_run(client: CommandClient, run_id: str, verdict: str, report: DemoReport
                     ) -> None:
    try:
        if verdict == "succeed":
            await client.send("run.succeed", run_id=run_id)
            report.outcomes["run succeeded"] += 1
        else:
            await client.send("run.fail", run_id=run_id,
                              reason="a task failed or the budget ran out")
            report.outcomes["run failed"] += 1
    except CommandRefused as refused:
        report.outcomes[f"run close refused: {refused.code}"] += 1
