"""One typed method per command, generated from the models in events/commands/.

Do not edit: change the models and run ``python -m services.sdk.codegen``.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Literal, TypeVar

from events.catalog.reservation import ReleaseReason
from events.catalog.run import RunBudget
from events.catalog.task import ErrorClass, ReportedErrorClass

from .replies import AcquireReply, ClaimReply, RecommendReply, Reply

__all__ = ["CommandMethods"]

R = TypeVar("R", bound=Reply)


class CommandMethods(abc.ABC):
    """Every command of runlog as a method; ``None`` leaves a field to its default."""

    @abc.abstractmethod
    async def _command(self, subject: str, reply_type: type[R], fields: dict[str, object]
                       ) -> R:
        """Sends ``runlog.cmd.<subject>`` with ``fields`` and returns the typed reply."""

    async def accept_patch(
        self,
        *,
        patch_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Record that validation passed.

        Sends ``runlog.cmd.patch.accept`` (``AcceptPatch``).
        """
        return await self._command("patch.accept", Reply, {
            "patch_id": patch_id,
            "command_id": command_id,
        })

    async def acquire_breaker(
        self,
        *,
        breaker_id: str,
        probe_id: str | None = None,
        command_id: str | None = None,
    ) -> AcquireReply:
        """Ask whether a call may go through; the reply says ``allowed`` true or false.

        Sends ``runlog.cmd.breaker.acquire`` (``AcquireBreaker``).
        """
        return await self._command("breaker.acquire", AcquireReply, {
            "breaker_id": breaker_id,
            "probe_id": probe_id,
            "command_id": command_id,
        })

    async def apply_patch(
        self,
        *,
        patch_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Begin applying a validated patch.

        Sends ``runlog.cmd.patch.apply`` (``ApplyPatch``).
        """
        return await self._command("patch.apply", Reply, {
            "patch_id": patch_id,
            "command_id": command_id,
        })

    async def block_task(
        self,
        *,
        task_id: str,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """Hold a waiting task back from claims.

        Sends ``runlog.cmd.task.block`` (``BlockTask``).
        """
        return await self._command("task.block", Reply, {
            "task_id": task_id,
            "reason": reason,
            "command_id": command_id,
        })

    async def block_workstream(
        self,
        *,
        workstream_id: str,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """Block a ready or running workstream on something outside it.

        Sends ``runlog.cmd.workstream.block`` (``BlockWorkstream``).
        """
        return await self._command("workstream.block", Reply, {
            "workstream_id": workstream_id,
            "reason": reason,
            "command_id": command_id,
        })

    async def cancel_run(
        self,
        *,
        run_id: str,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """Cancel a pending or running run.

        Sends ``runlog.cmd.run.cancel`` (``CancelRun``).
        """
        return await self._command("run.cancel", Reply, {
            "run_id": run_id,
            "reason": reason,
            "command_id": command_id,
        })

    async def cancel_task(
        self,
        *,
        task_id: str,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """Cancel a task that has not finished; a holder loses its lease.

        Sends ``runlog.cmd.task.cancel`` (``CancelTask``).
        """
        return await self._command("task.cancel", Reply, {
            "task_id": task_id,
            "reason": reason,
            "command_id": command_id,
        })

    async def cancel_workstream(
        self,
        *,
        workstream_id: str,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """Cancel a workstream that has not finished.

        Sends ``runlog.cmd.workstream.cancel`` (``CancelWorkstream``).
        """
        return await self._command("workstream.cancel", Reply, {
            "workstream_id": workstream_id,
            "reason": reason,
            "command_id": command_id,
        })

    async def claim_task(
        self,
        *,
        worker_id: str,
        kinds: Sequence[str] | None = None,
        command_id: str | None = None,
    ) -> ClaimReply:
        """Lease the best claimable task of ``kinds`` (default: the worker's kinds) to a worker.

        Sends ``runlog.cmd.task.claim`` (``ClaimTask``).
        """
        return await self._command("task.claim", ClaimReply, {
            "worker_id": worker_id,
            "kinds": kinds,
            "command_id": command_id,
        })

    async def close_budget(
        self,
        *,
        budget_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Close a budget: runs on it get no new work.

        Sends ``runlog.cmd.budget.close`` (``CloseBudget``).
        """
        return await self._command("budget.close", Reply, {
            "budget_id": budget_id,
            "command_id": command_id,
        })

    async def commit_patch(
        self,
        *,
        patch_id: str,
        commit: str | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Commit a verified patch (``commit``: the resulting revision, if known).

        Sends ``runlog.cmd.patch.commit`` (``CommitPatch``).
        """
        return await self._command("patch.commit", Reply, {
            "patch_id": patch_id,
            "commit": commit,
            "command_id": command_id,
        })

    async def configure_breaker(
        self,
        *,
        breaker_id: str,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        command_id: str | None = None,
    ) -> Reply:
        """Create a breaker, or change its threshold and cooldown.

        Sends ``runlog.cmd.breaker.configure`` (``ConfigureBreaker``).
        """
        return await self._command("breaker.configure", Reply, {
            "breaker_id": breaker_id,
            "failure_threshold": failure_threshold,
            "cooldown_s": cooldown_s,
            "command_id": command_id,
        })

    async def configure_model(
        self,
        *,
        model: str,
        tier: str | None = None,
        fallbacks: Sequence[str] | None = None,
        failure_threshold: int | None = None,
        cooldown_s: float | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Set a registered model's tier, fallback chain and circuit-breaker thresholds.

        Sends ``runlog.cmd.model.configure`` (``ConfigureModel``).
        """
        return await self._command("model.configure", Reply, {
            "model": model,
            "tier": tier,
            "fallbacks": fallbacks,
            "failure_threshold": failure_threshold,
            "cooldown_s": cooldown_s,
            "command_id": command_id,
        })

    async def configure_queue(
        self,
        *,
        kind: str,
        max_running: int | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Set how many tasks of ``kind`` may be leased at once, over all runs (null: no limit).

        Sends ``runlog.cmd.queue.configure`` (``ConfigureQueue``).
        """
        return await self._command("queue.configure", Reply, {
            "kind": kind,
            "max_running": max_running,
            "command_id": command_id,
        })

    async def configure_run(
        self,
        *,
        run_id: str,
        max_concurrency: int | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Change a run's ``max_concurrency`` (null: no limit of its own).

        Sends ``runlog.cmd.run.configure`` (``ConfigureRun``).
        """
        return await self._command("run.configure", Reply, {
            "run_id": run_id,
            "max_concurrency": max_concurrency,
            "command_id": command_id,
        })

    async def create_budget(
        self,
        *,
        name: str,
        budget_id: str | None = None,
        max_cost_usd: Decimal | float | str | None = None,
        max_tokens: int | None = None,
        scope: Literal["shared", "run", "session", "day"] = "shared",
        period: Literal["day"] | None = None,
        time_zone: str = "UTC",
        run_id: str | None = None,
        session_id: str | None = None,
        thresholds: Sequence[int] | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Create a shared budget; an absent bound is unlimited.

        Sends ``runlog.cmd.budget.create`` (``CreateBudget``).
        """
        return await self._command("budget.create", Reply, {
            "name": name,
            "budget_id": budget_id,
            "max_cost_usd": max_cost_usd,
            "max_tokens": max_tokens,
            "scope": scope,
            "period": period,
            "time_zone": time_zone,
            "run_id": run_id,
            "session_id": session_id,
            "thresholds": thresholds,
            "command_id": command_id,
        })

    async def create_gate(
        self,
        *,
        run_id: str,
        name: str,
        gate_id: str | None = None,
        patch_id: str | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Create a gate of a run (and maybe of one patch); ``gate_id`` is generated when omitted.

        Sends ``runlog.cmd.gate.create`` (``CreateGate``).
        """
        return await self._command("gate.create", Reply, {
            "run_id": run_id,
            "name": name,
            "gate_id": gate_id,
            "patch_id": patch_id,
            "command_id": command_id,
        })

    async def create_run(
        self,
        *,
        name: str,
        run_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        budget: RunBudget | Mapping[str, object] | None = None,
        budget_id: str | None = None,
        max_concurrency: int | None = None,
        auto_end: bool = False,
        cache_results: bool = False,
        cache_ttl_s: float | None = None,
        session_id: str | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Create a run in ``pending``; ``run_id`` is generated when omitted.

        Sends ``runlog.cmd.run.create`` (``CreateRun``).
        """
        return await self._command("run.create", Reply, {
            "name": name,
            "run_id": run_id,
            "labels": labels,
            "budget": budget,
            "budget_id": budget_id,
            "max_concurrency": max_concurrency,
            "auto_end": auto_end,
            "cache_results": cache_results,
            "cache_ttl_s": cache_ttl_s,
            "session_id": session_id,
            "command_id": command_id,
        })

    async def create_workstream(
        self,
        *,
        run_id: str,
        name: str,
        workstream_id: str | None = None,
        depends_on: Sequence[str] | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Create a workstream of a run in ``pending``; the id is generated when omitted.

        Sends ``runlog.cmd.workstream.create`` (``CreateWorkstream``).
        """
        return await self._command("workstream.create", Reply, {
            "run_id": run_id,
            "name": name,
            "workstream_id": workstream_id,
            "depends_on": depends_on,
            "command_id": command_id,
        })

    async def defer_task(
        self,
        *,
        task_id: str,
        not_before: datetime,
        command_id: str | None = None,
    ) -> Reply:
        """Push a queued task back: it is not claimed before ``not_before``.

        Sends ``runlog.cmd.task.defer`` (``DeferTask``).
        """
        return await self._command("task.defer", Reply, {
            "task_id": task_id,
            "not_before": not_before,
            "command_id": command_id,
        })

    async def deregister_worker(
        self,
        *,
        worker_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Take the worker ``offline`` now, or once its held tasks are released (``draining``).

        Sends ``runlog.cmd.worker.deregister`` (``DeregisterWorker``).
        """
        return await self._command("worker.deregister", Reply, {
            "worker_id": worker_id,
            "command_id": command_id,
        })

    async def drain_worker(
        self,
        *,
        worker_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Stop giving the worker tasks; it goes ``offline`` once it holds none.

        Sends ``runlog.cmd.worker.drain`` (``DrainWorker``).
        """
        return await self._command("worker.drain", Reply, {
            "worker_id": worker_id,
            "command_id": command_id,
        })

    async def expire_task_lease(
        self,
        *,
        task_id: str,
        lease_epoch: int,
        command_id: str | None = None,
    ) -> Reply:
        """Void a lapsed lease of ``lease_epoch`` (issued by the lease policy).

        Sends ``runlog.cmd.task.expire_lease`` (``ExpireTaskLease``).
        """
        return await self._command("task.expire_lease", Reply, {
            "task_id": task_id,
            "lease_epoch": lease_epoch,
            "command_id": command_id,
        })

    async def fail_gate(
        self,
        *,
        gate_id: str,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """Record that the check failed.

        Sends ``runlog.cmd.gate.fail`` (``FailGate``).
        """
        return await self._command("gate.fail", Reply, {
            "gate_id": gate_id,
            "reason": reason,
            "command_id": command_id,
        })

    async def fail_run(
        self,
        *,
        run_id: str,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """Finish a running run as failed.

        Sends ``runlog.cmd.run.fail`` (``FailRun``).
        """
        return await self._command("run.fail", Reply, {
            "run_id": run_id,
            "reason": reason,
            "command_id": command_id,
        })

    async def fail_task(
        self,
        *,
        task_id: str,
        worker_id: str,
        lease_epoch: int,
        error_class: ReportedErrorClass,
        message: str = "",
        retry_after_s: float | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """The holder's attempt failed; its error class's recovery strategy decides what follows.

        Sends ``runlog.cmd.task.fail`` (``FailTask``).
        """
        return await self._command("task.fail", Reply, {
            "task_id": task_id,
            "worker_id": worker_id,
            "lease_epoch": lease_epoch,
            "error_class": error_class,
            "message": message,
            "retry_after_s": retry_after_s,
            "command_id": command_id,
        })

    async def fail_workstream(
        self,
        *,
        workstream_id: str,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """Finish a running, paused or blocked workstream as failed.

        Sends ``runlog.cmd.workstream.fail`` (``FailWorkstream``).
        """
        return await self._command("workstream.fail", Reply, {
            "workstream_id": workstream_id,
            "reason": reason,
            "command_id": command_id,
        })

    async def force_close_breaker(
        self,
        *,
        breaker_id: str,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """An operator closes the breaker, forced open or not, and clears its failure count.

        Sends ``runlog.cmd.breaker.force_close`` (``ForceCloseBreaker``).
        """
        return await self._command("breaker.force_close", Reply, {
            "breaker_id": breaker_id,
            "reason": reason,
            "command_id": command_id,
        })

    async def force_open_breaker(
        self,
        *,
        breaker_id: str,
        reason: str = "",
        open_for_s: float | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """An operator opens the breaker for ``open_for_s`` seconds (omitted: until force_close).

        Sends ``runlog.cmd.breaker.force_open`` (``ForceOpenBreaker``).
        """
        return await self._command("breaker.force_open", Reply, {
            "breaker_id": breaker_id,
            "reason": reason,
            "open_for_s": open_for_s,
            "command_id": command_id,
        })

    async def heartbeat_task(
        self,
        *,
        task_id: str,
        worker_id: str,
        lease_epoch: int,
        command_id: str | None = None,
    ) -> Reply:
        """The holder extends its lease by the lease's time to live.

        Sends ``runlog.cmd.task.heartbeat`` (``HeartbeatTask``).
        """
        return await self._command("task.heartbeat", Reply, {
            "task_id": task_id,
            "worker_id": worker_id,
            "lease_epoch": lease_epoch,
            "command_id": command_id,
        })

    async def heartbeat_worker(
        self,
        *,
        worker_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Report the worker alive; a ``lost`` worker comes back ``idle``.

        Sends ``runlog.cmd.worker.heartbeat`` (``HeartbeatWorker``).
        """
        return await self._command("worker.heartbeat", Reply, {
            "worker_id": worker_id,
            "command_id": command_id,
        })

    async def invalidate_cache(
        self,
        *,
        cache_id: Literal["results"] = "results",
        cache_key: str | None = None,
        prefix: str | None = None,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """Drop the cached results under ``cache_key``, or under every key starting with ``prefix``.

        Sends ``runlog.cmd.cache.invalidate`` (``InvalidateCache``).
        """
        return await self._command("cache.invalidate", Reply, {
            "cache_id": cache_id,
            "cache_key": cache_key,
            "prefix": prefix,
            "reason": reason,
            "command_id": command_id,
        })

    async def mark_patch_applied(
        self,
        *,
        patch_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Record that the patch is in the working tree.

        Sends ``runlog.cmd.patch.applied`` (``MarkPatchApplied``).
        """
        return await self._command("patch.applied", Reply, {
            "patch_id": patch_id,
            "command_id": command_id,
        })

    async def mark_worker_lost(
        self,
        *,
        worker_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Declare a silent worker ``lost`` (issued by the lease policy).

        Sends ``runlog.cmd.worker.mark_lost`` (``MarkWorkerLost``).
        """
        return await self._command("worker.mark_lost", Reply, {
            "worker_id": worker_id,
            "command_id": command_id,
        })

    async def mark_workstream_ready(
        self,
        *,
        workstream_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Mark a pending workstream ready (its dependencies must be done).

        Sends ``runlog.cmd.workstream.ready`` (``MarkWorkstreamReady``).
        """
        return await self._command("workstream.ready", Reply, {
            "workstream_id": workstream_id,
            "command_id": command_id,
        })

    async def pass_gate(
        self,
        *,
        gate_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Record that the check passed.

        Sends ``runlog.cmd.gate.pass`` (``PassGate``).
        """
        return await self._command("gate.pass", Reply, {
            "gate_id": gate_id,
            "command_id": command_id,
        })

    async def pause_workstream(
        self,
        *,
        workstream_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Pause a running workstream.

        Sends ``runlog.cmd.workstream.pause`` (``PauseWorkstream``).
        """
        return await self._command("workstream.pause", Reply, {
            "workstream_id": workstream_id,
            "command_id": command_id,
        })

    async def propose_patch(
        self,
        *,
        run_id: str,
        title: str,
        patch_id: str | None = None,
        task_id: str | None = None,
        files: Sequence[str] | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Propose a patch for a running run; ``patch_id`` is generated when omitted.

        Sends ``runlog.cmd.patch.propose`` (``ProposePatch``).
        """
        return await self._command("patch.propose", Reply, {
            "run_id": run_id,
            "title": title,
            "patch_id": patch_id,
            "task_id": task_id,
            "files": files,
            "command_id": command_id,
        })

    async def queue_task(
        self,
        *,
        task_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Queue a pending task (its workstream runs again).

        Sends ``runlog.cmd.task.queue`` (``QueueTask``).
        """
        return await self._command("task.queue", Reply, {
            "task_id": task_id,
            "command_id": command_id,
        })

    async def raise_budget(
        self,
        *,
        budget_id: str,
        max_cost_usd: Decimal | float | str | None = None,
        max_tokens: int | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Raise a budget's bounds (an absent one stays as it is); an exhausted budget reopens.

        Sends ``runlog.cmd.budget.raise`` (``RaiseBudget``).
        """
        return await self._command("budget.raise", Reply, {
            "budget_id": budget_id,
            "max_cost_usd": max_cost_usd,
            "max_tokens": max_tokens,
            "command_id": command_id,
        })

    async def recommend_model(
        self,
        *,
        recommendation_id: str | None = None,
        tier: str | None = None,
        models: Sequence[str] | None = None,
        max_usd_per_mtok: Decimal | float | str | None = None,
        run_id: str | None = None,
        estimate_tokens: int = 0,
        command_id: str | None = None,
    ) -> RecommendReply:
        """Recommend the cheapest healthy model that fits the price cap and the budget left.

        Sends ``runlog.cmd.model.recommend`` (``RecommendModel``).
        """
        return await self._command("model.recommend", RecommendReply, {
            "recommendation_id": recommendation_id,
            "tier": tier,
            "models": models,
            "max_usd_per_mtok": max_usd_per_mtok,
            "run_id": run_id,
            "estimate_tokens": estimate_tokens,
            "command_id": command_id,
        })

    async def record_breaker_outcome(
        self,
        *,
        breaker_id: str,
        outcome: Literal["success", "failure"],
        error_class: ErrorClass | None = None,
        failure_threshold: int | None = None,
        cooldown_s: float | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Report one guarded call's outcome; an unknown breaker is created.

        Sends ``runlog.cmd.breaker.record`` (``RecordBreakerOutcome``).
        """
        return await self._command("breaker.record", Reply, {
            "breaker_id": breaker_id,
            "outcome": outcome,
            "error_class": error_class,
            "failure_threshold": failure_threshold,
            "cooldown_s": cooldown_s,
            "command_id": command_id,
        })

    async def record_budget_threshold(
        self,
        *,
        budget_id: str,
        threshold: int,
        tokens: int,
        cost_usd: Decimal | float | str,
        period: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """Record that settled spending crossed a threshold (the alert policy sends it).

        Sends ``runlog.cmd.budget.record_threshold`` (``RecordBudgetThreshold``).
        """
        return await self._command("budget.record_threshold", Reply, {
            "budget_id": budget_id,
            "threshold": threshold,
            "tokens": tokens,
            "cost_usd": cost_usd,
            "period": period,
            "command_id": command_id,
        })

    async def record_usage(
        self,
        *,
        run_id: str,
        model: str,
        tokens_in: int,
        tokens_out: int,
        task_id: str | None = None,
        worker_id: str | None = None,
        latency_ms: float | None = None,
        outcome: str = "ok",
        cached_tokens_in: int = 0,
        cache_write_tokens_in: int = 0,
        provider_cost_usd: Decimal | float | str | None = None,
        reservation_id: str | None = None,
        session_id: str | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Record one model call's tokens against its run, priced at the price in effect.

        Sends ``runlog.cmd.usage.record`` (``RecordUsage``).
        """
        return await self._command("usage.record", Reply, {
            "run_id": run_id,
            "model": model,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "task_id": task_id,
            "worker_id": worker_id,
            "latency_ms": latency_ms,
            "outcome": outcome,
            "cached_tokens_in": cached_tokens_in,
            "cache_write_tokens_in": cache_write_tokens_in,
            "provider_cost_usd": provider_cost_usd,
            "reservation_id": reservation_id,
            "session_id": session_id,
            "command_id": command_id,
        })

    async def register_model(
        self,
        *,
        model: str,
        provider: str,
        input_usd_per_mtok: Decimal | float | str,
        output_usd_per_mtok: Decimal | float | str,
        effective_from: datetime | None = None,
        cached_input_usd_per_mtok: Decimal | float | str | None = None,
        cache_write_usd_per_mtok: Decimal | float | str | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Register a model's price from ``effective_from`` on (default: now).

        Sends ``runlog.cmd.model.register`` (``RegisterModel``).
        """
        return await self._command("model.register", Reply, {
            "model": model,
            "provider": provider,
            "input_usd_per_mtok": input_usd_per_mtok,
            "output_usd_per_mtok": output_usd_per_mtok,
            "effective_from": effective_from,
            "cached_input_usd_per_mtok": cached_input_usd_per_mtok,
            "cache_write_usd_per_mtok": cache_write_usd_per_mtok,
            "command_id": command_id,
        })

    async def register_worker(
        self,
        *,
        worker_id: str,
        kinds: Sequence[str] | None = None,
        capacity: int = 1,
        command_id: str | None = None,
    ) -> Reply:
        """Register a worker, ``idle``; an ``offline`` or ``lost`` worker registers again.

        Sends ``runlog.cmd.worker.register`` (``RegisterWorker``).
        """
        return await self._command("worker.register", Reply, {
            "worker_id": worker_id,
            "kinds": kinds,
            "capacity": capacity,
            "command_id": command_id,
        })

    async def reject_patch(
        self,
        *,
        patch_id: str,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """Refuse a patch that has not been applied.

        Sends ``runlog.cmd.patch.reject`` (``RejectPatch``).
        """
        return await self._command("patch.reject", Reply, {
            "patch_id": patch_id,
            "reason": reason,
            "command_id": command_id,
        })

    async def release_reservation(
        self,
        *,
        reservation_id: str,
        reason: ReleaseReason = "released",
        command_id: str | None = None,
    ) -> Reply:
        """Give a reservation back: it no longer counts against any budget.

        Sends ``runlog.cmd.budget.release`` (``ReleaseReservation``).
        """
        return await self._command("budget.release", Reply, {
            "reservation_id": reservation_id,
            "reason": reason,
            "command_id": command_id,
        })

    async def requeue_task(
        self,
        *,
        task_id: str,
        max_attempts: int | None = None,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """An operator sends a failed task back to the queue, with fresh attempts.

        Sends ``runlog.cmd.task.requeue`` (``RequeueTask``).
        """
        return await self._command("task.requeue", Reply, {
            "task_id": task_id,
            "max_attempts": max_attempts,
            "reason": reason,
            "command_id": command_id,
        })

    async def reserve_budget(
        self,
        *,
        run_id: str,
        reservation_id: str | None = None,
        task_id: str | None = None,
        worker_id: str | None = None,
        model: str | None = None,
        estimate_tokens: int | None = None,
        estimate_cost_usd: Decimal | float | str | None = None,
        ttl_s: float = 300.0,
        command_id: str | None = None,
    ) -> Reply:
        """Set aside an estimate on every budget that applies to the run (refused when over one).

        Sends ``runlog.cmd.budget.reserve`` (``ReserveBudget``).
        """
        return await self._command("budget.reserve", Reply, {
            "run_id": run_id,
            "reservation_id": reservation_id,
            "task_id": task_id,
            "worker_id": worker_id,
            "model": model,
            "estimate_tokens": estimate_tokens,
            "estimate_cost_usd": estimate_cost_usd,
            "ttl_s": ttl_s,
            "command_id": command_id,
        })

    async def reset_breaker(
        self,
        *,
        breaker_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Close the breaker and clear its failure count.

        Sends ``runlog.cmd.breaker.reset`` (``ResetBreaker``).
        """
        return await self._command("breaker.reset", Reply, {
            "breaker_id": breaker_id,
            "command_id": command_id,
        })

    async def resume_workstream(
        self,
        *,
        workstream_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Resume a paused workstream.

        Sends ``runlog.cmd.workstream.resume`` (``ResumeWorkstream``).
        """
        return await self._command("workstream.resume", Reply, {
            "workstream_id": workstream_id,
            "command_id": command_id,
        })

    async def roll_back_patch(
        self,
        *,
        patch_id: str,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """Take an applying, applied, testing or verified patch back out.

        Sends ``runlog.cmd.patch.rollback`` (``RollBackPatch``).
        """
        return await self._command("patch.rollback", Reply, {
            "patch_id": patch_id,
            "reason": reason,
            "command_id": command_id,
        })

    async def set_model_quota(
        self,
        *,
        model: str,
        max_tokens_per_day: int | None = None,
        max_requests_per_day: int | None = None,
        max_cost_usd_per_day: Decimal | float | str | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Set a registered model's daily quota (per UTC day); a bound left out or null is none.

        Sends ``runlog.cmd.model.set_quota`` (``SetModelQuota``).
        """
        return await self._command("model.set_quota", Reply, {
            "model": model,
            "max_tokens_per_day": max_tokens_per_day,
            "max_requests_per_day": max_requests_per_day,
            "max_cost_usd_per_day": max_cost_usd_per_day,
            "command_id": command_id,
        })

    async def skip_workstream(
        self,
        *,
        workstream_id: str,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """Skip a workstream that has not started running.

        Sends ``runlog.cmd.workstream.skip`` (``SkipWorkstream``).
        """
        return await self._command("workstream.skip", Reply, {
            "workstream_id": workstream_id,
            "reason": reason,
            "command_id": command_id,
        })

    async def start_gate(
        self,
        *,
        gate_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Begin the gate's check.

        Sends ``runlog.cmd.gate.start`` (``StartGate``).
        """
        return await self._command("gate.start", Reply, {
            "gate_id": gate_id,
            "command_id": command_id,
        })

    async def start_run(
        self,
        *,
        run_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Move a run from ``pending`` to ``running``.

        Sends ``runlog.cmd.run.start`` (``StartRun``).
        """
        return await self._command("run.start", Reply, {
            "run_id": run_id,
            "command_id": command_id,
        })

    async def start_task(
        self,
        *,
        task_id: str,
        worker_id: str,
        lease_epoch: int,
        command_id: str | None = None,
    ) -> Reply:
        """The holder begins a leased task.

        Sends ``runlog.cmd.task.start`` (``StartTask``).
        """
        return await self._command("task.start", Reply, {
            "task_id": task_id,
            "worker_id": worker_id,
            "lease_epoch": lease_epoch,
            "command_id": command_id,
        })

    async def start_workstream(
        self,
        *,
        workstream_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Start a ready workstream.

        Sends ``runlog.cmd.workstream.start`` (``StartWorkstream``).
        """
        return await self._command("workstream.start", Reply, {
            "workstream_id": workstream_id,
            "command_id": command_id,
        })

    async def submit_task(
        self,
        *,
        run_id: str,
        kind: str,
        task_id: str | None = None,
        priority: int = 5,
        resource: str | None = None,
        max_attempts: int = 3,
        payload: Mapping[str, object] | None = None,
        workstream_id: str | None = None,
        depends_on: Sequence[str] | None = None,
        concurrency_key: str | None = None,
        max_concurrency: int | None = None,
        not_before: datetime | None = None,
        deferrable: bool = False,
        timeout_s: float | None = None,
        model: str | None = None,
        cache_key: str | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """Submit a task of a running run; ``task_id`` is generated when omitted.

        Sends ``runlog.cmd.task.submit`` (``SubmitTask``).
        """
        return await self._command("task.submit", Reply, {
            "run_id": run_id,
            "kind": kind,
            "task_id": task_id,
            "priority": priority,
            "resource": resource,
            "max_attempts": max_attempts,
            "payload": payload,
            "workstream_id": workstream_id,
            "depends_on": depends_on,
            "concurrency_key": concurrency_key,
            "max_concurrency": max_concurrency,
            "not_before": not_before,
            "deferrable": deferrable,
            "timeout_s": timeout_s,
            "model": model,
            "cache_key": cache_key,
            "command_id": command_id,
        })

    async def succeed_run(
        self,
        *,
        run_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Finish a running run successfully.

        Sends ``runlog.cmd.run.succeed`` (``SucceedRun``).
        """
        return await self._command("run.succeed", Reply, {
            "run_id": run_id,
            "command_id": command_id,
        })

    async def succeed_task(
        self,
        *,
        task_id: str,
        worker_id: str,
        lease_epoch: int,
        result: Mapping[str, object] | None = None,
        command_id: str | None = None,
    ) -> Reply:
        """The holder finished the task successfully.

        Sends ``runlog.cmd.task.succeed`` (``SucceedTask``).
        """
        return await self._command("task.succeed", Reply, {
            "task_id": task_id,
            "worker_id": worker_id,
            "lease_epoch": lease_epoch,
            "result": result,
            "command_id": command_id,
        })

    async def succeed_workstream(
        self,
        *,
        workstream_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Finish a running workstream successfully.

        Sends ``runlog.cmd.workstream.succeed`` (``SucceedWorkstream``).
        """
        return await self._command("workstream.succeed", Reply, {
            "workstream_id": workstream_id,
            "command_id": command_id,
        })

    async def test_patch(
        self,
        *,
        patch_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Begin testing an applied patch.

        Sends ``runlog.cmd.patch.test`` (``TestPatch``).
        """
        return await self._command("patch.test", Reply, {
            "patch_id": patch_id,
            "command_id": command_id,
        })

    async def time_out_task(
        self,
        *,
        task_id: str,
        lease_epoch: int,
        command_id: str | None = None,
    ) -> Reply:
        """Fail the attempt of ``lease_epoch`` that ran past its ``timeout_s`` (the timeout policy).

        Sends ``runlog.cmd.task.time_out`` (``TimeOutTask``).
        """
        return await self._command("task.time_out", Reply, {
            "task_id": task_id,
            "lease_epoch": lease_epoch,
            "command_id": command_id,
        })

    async def unblock_task(
        self,
        *,
        task_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Queue a blocked task again (its dependencies must have succeeded).

        Sends ``runlog.cmd.task.unblock`` (``UnblockTask``).
        """
        return await self._command("task.unblock", Reply, {
            "task_id": task_id,
            "command_id": command_id,
        })

    async def unblock_workstream(
        self,
        *,
        workstream_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Lift a block; the workstream goes back to ``ready``.

        Sends ``runlog.cmd.workstream.unblock`` (``UnblockWorkstream``).
        """
        return await self._command("workstream.unblock", Reply, {
            "workstream_id": workstream_id,
            "command_id": command_id,
        })

    async def validate_patch(
        self,
        *,
        patch_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Begin validating a proposed patch.

        Sends ``runlog.cmd.patch.validate`` (``ValidatePatch``).
        """
        return await self._command("patch.validate", Reply, {
            "patch_id": patch_id,
            "command_id": command_id,
        })

    async def verify_patch(
        self,
        *,
        patch_id: str,
        command_id: str | None = None,
    ) -> Reply:
        """Record that the tests passed.

        Sends ``runlog.cmd.patch.verify`` (``VerifyPatch``).
        """
        return await self._command("patch.verify", Reply, {
            "patch_id": patch_id,
            "command_id": command_id,
        })

    async def waive_gate(
        self,
        *,
        gate_id: str,
        by: str,
        reason: str = "",
        command_id: str | None = None,
    ) -> Reply:
        """Accept a pending, running or failed gate without a pass; ``by`` says who decided.

        Sends ``runlog.cmd.gate.waive`` (``WaiveGate``).
        """
        return await self._command("gate.waive", Reply, {
            "gate_id": gate_id,
            "by": by,
            "reason": reason,
            "command_id": command_id,
        })
