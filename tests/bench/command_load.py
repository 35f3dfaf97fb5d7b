"""Load generator for the command benchmarks: clients each driving whole run lifecycles.

Runs in its own process (so its CPU does not slow the service under test) and
prints one JSON line: commands per second, latency percentiles and the last
stream sequence written. Closed loop by default (64 clients, each sends its next
command when the last one is answered); ``--rate N`` paces all clients together
to N commands/s instead (open loop), and ``--probe-every K`` then asks, after
every K-th reply, for the run's row over ``runlog.sql.query`` with ``wait_seq``
(the reply's seq): the time from the reply to the row's answer is the freshness.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

import nats
from nats.aio.client import Client

PROBE_CONNECTIONS = 8
MODELS = ("gpt-4o", "claude-sonnet-4", "gemini-2.5-flash", "gpt-4.1-mini")


def lifecycle(client: int, n: int, tag: str) -> list[tuple[str, dict[str, object]]]:
    """The command mix of one run: create, start, 4 x usage.record, succeed."""
    run_id = f"{tag}-c{client}-r{n}"
    usage = [("usage.record", {"run_id": run_id, "model": MODELS[i], "tokens_in": 1200 + i,
                               "tokens_out": 300 + i, "latency_ms": 850.0}) for i in range(4)]
    return [("run.create", {"run_id": run_id, "name": f"bench run {n}"}),
            ("run.start", {"run_id": run_id}), *usage, ("run.succeed", {"run_id": run_id})]


class Pacer:
    """Hands out send times ``rate`` per second, shared by every client (None: no pacing)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.sent = 0
        self.started = time.perf_counter()

    async def wait_turn(self) -> None:
        if self.rate is None:
            return
        self.sent += 1
        delay = self.started + self.sent / self.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)


class Freshness:
    """Reply-to-row-visible latencies, asked over ``runlog.sql.query`` with ``wait_seq``.

    The probes go out over ``PROBE_CONNECTIONS`` connections: the SQL side queues each
    client's queries fairly (a few at once per client), and a burst of probes released
    by one projector commit must not be refused as one client's flood.
    """

    def __init__(self, url: str, every: int) -> None:
        self.url, self.every = url, every
        self.connections: list[Client] = []
        self.samples: list[float] = []
        self.errors: Counter[str] = Counter()
        self.count = 0
        self.probes: set[asyncio.Task[None]] = set()

    async def connect(self) -> None:
        if self.every:
            self.connections = [await nats.connect(self.url) for _ in range(PROBE_CONNECTIONS)]

    def after_reply(self, run_id: str, seq: int, replied_at: float) -> None:
        self.count += 1
        if self.every and self.count % self.every == 0:
            nc = self.connections[(self.count // self.every) % len(self.connections)]
            probe = asyncio.create_task(self.probe(nc, run_id, seq, replied_at))
            self.probes.add(probe)
            probe.add_done_callback(self.probes.discard)

    async def probe(self, nc: Client, run_id: str, seq: int, replied_at: float) -> None:
        request = {"sql": f"SELECT run_id FROM runs WHERE run_id = '{run_id}'",
                   "wait_seq": seq, "wait_timeout_s": 30}
        msg = await nc.request("runlog.sql.query", json.dumps(request).encode(), timeout=40)
        reply = json.loads(msg.data)
        if not reply.get("ok"):
            self.errors[str(reply.get("error", {}).get("code"))] += 1
        elif not reply["result"]["rows"]:
            self.errors["row missing"] += 1
        else:
            self.samples.append(time.perf_counter() - replied_at)

    async def finish(self) -> dict[str, float]:
        await asyncio.gather(*self.probes)
        for nc in self.connections:
            await nc.close()
        if not self.every:
            return {}
        ordered = sorted(self.samples) or [float("nan")]
        errors = {f"fresh_error_{code}": float(n) for code, n in self.errors.items()}
        return {"fresh_samples": len(self.samples), "fresh_wrong": sum(self.errors.values()),
                "fresh_p50_ms": ordered[len(ordered) // 2] * 1e3,
                "fresh_p99_ms": ordered[int(len(ordered) * 0.99)] * 1e3} | errors


async def drive(url: str, clients: int, runs_per_client: int, tag: str,
                rate: float | None = None, probe_every: int = 0) -> dict[str, float]:
    nc = await nats.connect(url)
    latencies: list[float] = []
    failures = 0
    last_seq = 0
    pacer = Pacer(rate)
    freshness = Freshness(url, probe_every)
    await freshness.connect()

    async def client(number: int) -> None:
        nonlocal failures, last_seq
        for n in range(runs_per_client):
            for action, body in lifecycle(number, n, tag):
                await pacer.wait_turn()
                started = time.perf_counter()
                msg = await nc.request(f"runlog.cmd.{action}", json.dumps(body).encode(),
                                       timeout=30)
                replied_at = time.perf_counter()
                latencies.append(replied_at - started)
                reply = json.loads(msg.data)
                failures += not reply.get("ok")
                seq = int(reply.get("seq") or 0)
                last_seq = max(last_seq, seq)
                if seq:
                    freshness.after_reply(str(body["run_id"]), seq, replied_at)

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    elapsed = time.perf_counter() - started
    fresh = await freshness.finish()
    await nc.close()
    latencies.sort()
    return {"commands_per_s": len(latencies) / elapsed, "commands": len(latencies),
            "failures": failures, "p50_ms": latencies[len(latencies) // 2] * 1e3,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3, "last_seq": last_seq,
            "elapsed_s": elapsed} | fresh


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--runs", type=int, default=10, help="runs per client")
    parser.add_argument("--tag", default="b")
    parser.add_argument("--rate", type=float, default=None,
                        help="pace every client together to this many commands/s")
    parser.add_argument("--probe-every", type=int, default=0,
                        help="after every K-th reply, time until its row is visible")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(drive(args.url, args.clients, args.runs, args.tag,
                                       args.rate, args.probe_every))))
