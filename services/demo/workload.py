"""A realistic multi-agent workload: runs of tasks, workers claiming them, priced model calls,
retries after transient errors, a run over its budget, a cancelled run, provider breakers."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

from services.sdk import (
    Client,
    CommandError,
    Handler,
    TaskContext,
    TaskEnd,
    TaskFailure,
    Worker,
    WorkerConfig,
)

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
# The agents poll about as often as a busy pipeline's workers would; no signal handling:
# the demo itself stops them.
AGENT_CONFIG = WorkerConfig(idle_backoff_initial_s=0.05, idle_backoff_max_s=0.2,
                            handle_signals=False)


@dataclass
class DemoReport:
    """What the workload did, counted from the replies it got."""

    commands: int = 0
    last_seq: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    task_ends: dict[str, str] = field(default_factory=dict)
    """Task id -> ``succeeded`` / ``failed``, learnt from the replies of the agents."""


async def run_workload(client: Client, runs: int = 12, workers: int = 6,
                       seed: int = 7, deadline_s: float = 40.0) -> DemoReport:
    """Drives the whole workload to completion (or the deadline) and reports it."""
    rng = random.Random(seed)
    report = DemoReport()
    run_ids = await _start_runs(client, rng, runs)
    tasks = {run_id: await _submit_tasks(client, rng, run_id) for run_id in run_ids}
    await _cancel_one(client, run_ids[-1], report)
    agents = [Worker(client, f"agent-{n + 1}", _agent(random.Random(seed + n), report),
                     kinds=KINDS, capacity=2, config=AGENT_CONFIG,
                     on_task_end=lambda end: _count_end(end, report))
              for n in range(workers)]
    running = [asyncio.create_task(agent.run()) for agent in agents]
    await _finish_runs(client, tasks, run_ids[:-1], report, deadline_s)
    for agent in agents:
        agent.stop()
    await asyncio.gather(*running)
    report.commands, report.last_seq = client.stats.requests, client.last_seq
    return report


async def _start_runs(client: Client, rng: random.Random, runs: int) -> list[str]:
    run_ids = []
    for n in range(runs):
        run_id = f"run-{n + 1:02d}-{PIPELINES[n % len(PIPELINES)]}"
        # One run gets a budget far too small for its work: it will be stopped.
        budget = {"max_cost_usd": 0.02} if n == 2 else {"max_cost_usd": 5.0}
        await client.create_run(run_id=run_id, name=PIPELINES[n % len(PIPELINES)],
                                labels={"team": rng.choice(("platform", "growth", "infra"))},
                                budget=budget)
        await client.start_run(run_id=run_id)
        run_ids.append(run_id)
    return run_ids


async def _submit_tasks(client: Client, rng: random.Random, run_id: str) -> list[str]:
    ids = []
    for n in range(rng.randint(4, 7)):
        reply = await client.submit_task(run_id=run_id, kind=rng.choice(KINDS),
                                         priority=rng.randint(2, 8), max_attempts=3,
                                         payload={"step": n, "prompt": f"step {n} of {run_id}"})
        ids.append(reply.id)
    return ids


async def _cancel_one(client: Client, run_id: str, report: DemoReport) -> None:
    await client.cancel_run(run_id=run_id, reason="superseded by a newer request")
    report.outcomes["run cancelled"] += 1


def _agent(rng: random.Random, report: DemoReport) -> Handler:
    """One agent's work on a task: a few model calls, then a result or a failure."""
    async def work(task: TaskContext) -> dict[str, object]:
        for _ in range(rng.randint(1, 4)):
            await _model_call(task, rng, report)
            await task.heartbeat()
        roll = rng.random()
        if roll < 0.14:
            raise TaskFailure("rate_limit", "429 from the provider")
        if roll < 0.19:
            raise TaskFailure("invalid_request", "tool call schema rejected")
        return {"summary": "done"}

    return work


async def _model_call(task: TaskContext, rng: random.Random, report: DemoReport) -> None:
    model, provider, _ = rng.choices(MODELS, weights=[m[2] for m in MODELS])[0]
    # The usage feeds the provider's breaker (and the model's) by itself: no record call.
    permit = await task.client.acquire_breaker(breaker_id=f"provider-{provider}")
    if not permit.allowed:
        report.outcomes["call skipped: breaker open"] += 1
        return
    outcome = "ok" if rng.random() > 0.08 else rng.choice(("rate_limit", "timeout"))
    prompt = rng.randint(800, 24000)
    cached = int(prompt * rng.choice((0.0, 0.0, 0.5, 0.8)))  # a shared system prompt, cached
    await task.record_usage(model, tokens_in=prompt - cached, cached_tokens_in=cached,
                            tokens_out=rng.randint(150, 4000),
                            latency_ms=rng.uniform(300, 9000), outcome=outcome)
    report.outcomes[f"model call {outcome}"] += 1


def _count_end(end: TaskEnd, report: DemoReport) -> None:
    """What an agent saw when its task ended; a task that ended for good is noted."""
    if end.outcome == "succeeded":
        report.outcomes["task succeeded"] += 1
    elif end.outcome == "failed" and end.reply is not None:
        retried = " (retried)" if "TaskRetryScheduled" in end.reply.events else ""
        report.outcomes[f"task failed: {end.error_class}{retried}"] += 1
    else:
        code = end.error.code if isinstance(end.error, CommandError) else "lease lost"
        report.outcomes[f"task abandoned: {code}"] += 1
    events = end.reply.events if end.reply is not None else ()
    if "TaskFailed" in events or "TaskSucceeded" in events:
        report.task_ends[end.task.task_id] = "failed" if "TaskFailed" in events else "succeeded"


async def _finish_runs(client: Client, tasks: dict[str, list[str]], run_ids: list[str],
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


async def _submit_review(client: Client, run_id: str, tasks: dict[str, list[str]],
                         report: DemoReport) -> bool:
    """Submits the run's final review task; False when the run's budget refuses it."""
    try:
        reply = await client.submit_task(run_id=run_id, kind="review", priority=9,
                                         payload={"prompt": f"review the output of {run_id}"})
    except CommandError as refused:
        report.outcomes[f"review refused: {refused.code}"] += 1
        return False
    tasks[run_id].append(reply.id)
    return True


async def _close_run(client: Client, run_id: str, verdict: str, report: DemoReport
                     ) -> None:
    try:
        if verdict == "succeed":
            await client.succeed_run(run_id=run_id)
            report.outcomes["run succeeded"] += 1
        else:
            await client.fail_run(run_id=run_id, reason="a task failed or the budget ran out")
            report.outcomes["run failed"] += 1
    except CommandError as refused:
        report.outcomes[f"run close refused: {refused.code}"] += 1
