"""Load generator for the command benchmarks: clients each driving whole run lifecycles.

Runs in its own process (so its CPU does not slow the service under test) and
prints one JSON line: commands per second, latency percentiles and the last
stream sequence written. Closed loop by default (64 clients, each sends its next
command when the last one is answered); ``--rate N`` paces all clients together
to N commands/s instead (open loop). Freshness, the time from a reply to its row being
visible, two ways: ``--poll-ms P`` polls the read side's position over
``runlog.sql.query`` (the first answer that includes a reply's seq dates it), and
``--probe-every K`` reads the run's row back after every K-th reply, as a client that
reads its own writes does (``wait_seq``: the query runs once the read models hold it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import nats
from nats.aio.client import Client

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
    """Reply-to-row-visible latencies, by polling the read side's position.

    One query at a time asks ``runlog.sql.query`` for ``min(last_seq)`` of the
    ``checkpoints`` table (every projection commits its rows and its checkpoint in one
    transaction), every ``poll_s``. A reply's freshness is the time from the reply to
    the first answer showing a position at or past its seq. Polling keeps one query in
    flight, so the SQL side's admission limits never refuse a probe.
    """

    SQL = "SELECT min(last_seq) AS position FROM checkpoints"

    def __init__(self, url: str, poll_s: float) -> None:
        self.url, self.poll_s = url, poll_s
        self.replies: list[tuple[int, float]] = []
        self.answers: list[tuple[float, int]] = []
        self.round_trips: list[float] = []
        self.errors = 0
        self.last_seq = 0
        self.done = asyncio.Event()
        self.poller: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.poll_s:
            self.poller = asyncio.create_task(self.poll())

    def after_reply(self, seq: int, replied_at: float) -> None:
        if self.poll_s:
            self.replies.append((seq, replied_at))

    async def poll(self) -> None:
        nc = await nats.connect(self.url)
        request = json.dumps({"sql": self.SQL}).encode()
        try:
            while True:
                sent = time.perf_counter()
                reply = json.loads((await nc.request("runlog.sql.query", request, 30)).data)
                answered = time.perf_counter()
                self.round_trips.append(answered - sent)
                if not reply.get("ok"):
                    self.errors += 1
                else:
                    position = int(reply["result"]["rows"][0][0] or 0)
                    self.answers.append((answered, position))
                    if self.done.is_set() and position >= self.last_seq:
                        return
                await asyncio.sleep(max(0.0, sent + self.poll_s - time.perf_counter()))
        finally:
            await nc.close()

    async def finish(self, last_seq: int) -> dict[str, float]:
        if self.poller is None:
            return {}
        self.last_seq = last_seq
        self.done.set()
        await asyncio.wait_for(self.poller, 120)
        samples = sorted(self.visible_after())
        trips = sorted(self.round_trips)
        return {"fresh_samples": len(samples), "fresh_errors": self.errors,
                "fresh_p50_ms": samples[len(samples) // 2] * 1e3,
                "fresh_p99_ms": samples[int(len(samples) * 0.99)] * 1e3,
                "poll_p50_ms": trips[len(trips) // 2] * 1e3}

    def visible_after(self) -> list[float]:
        """For each reply, the seconds until an answer showed it (answers are in time order)."""
        samples: list[float] = []
        first = 0
        for seq, replied_at in sorted(self.replies, key=lambda reply: reply[1]):
            while self.answers[first][0] < replied_at:
                first += 1
            at = next(answered for answered, position in self.answers[first:] if position >= seq)
            samples.append(at - replied_at)
        return samples


class ReadYourWrites:
    """After every ``every``-th reply, reads the run's row back with ``wait_seq``: the time
    from the reply to the answer is that command's freshness, measured exactly.

    Probes go out on ``connections`` connections in turn (the read side queues each
    client's queries apart), each as a task of its own, so a slow one holds nobody up.
    """

    SQL = "SELECT state FROM runs WHERE run_id = '{run_id}'"

    def __init__(self, url: str, every: int, connections: int = 4) -> None:
        self.url, self.every, self.connections = url, every, connections
        self.samples: list[float] = []
        self.errors = 0
        self._replies = 0
        self._ncs: list[Client] = []
        self._probes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self.every:
            self._ncs = [await nats.connect(self.url) for _ in range(self.connections)]

    def after_reply(self, seq: int, replied_at: float, run_id: str) -> None:
        if not self.every:
            return
        self._replies += 1
        if self._replies % self.every == 0:
            nc = self._ncs[self._replies // self.every % len(self._ncs)]
            probe = asyncio.create_task(self.probe(nc, seq, replied_at, run_id))
            self._probes.add(probe)
            probe.add_done_callback(self._probes.discard)

    async def probe(self, nc: Client, seq: int, replied_at: float, run_id: str) -> None:
        body = {"sql": self.SQL.format(run_id=run_id), "wait_seq": seq, "wait_timeout_s": 30}
        try:
            msg = await nc.request("runlog.sql.query", json.dumps(body).encode(), 40)
        except Exception:  # a timeout: counted, never a sample
            self.errors += 1
            return
        answered = time.perf_counter()
        reply = json.loads(msg.data)
        result = reply.get("result") or {}
        if not reply.get("ok") or int(result.get("position") or 0) < seq or not result["rows"]:
            self.errors += 1  # refused, or an answer that does not hold the row
            return
        self.samples.append(answered - replied_at)

    async def finish(self) -> dict[str, float]:
        if not self.every:
            return {}
        await asyncio.gather(*self._probes)
        for nc in self._ncs:
            await nc.close()
        samples = sorted(self.samples)
        return {"probe_samples": len(samples), "probe_errors": self.errors,
                "probe_p50_ms": samples[len(samples) // 2] * 1e3,
                "probe_p99_ms": samples[int(len(samples) * 0.99)] * 1e3}


async def drive(url: str, clients: int, runs_per_client: int, tag: str,
                rate: float | None = None, poll_ms: float = 0, probe_every: int = 0
                ) -> dict[str, float]:
    nc = await nats.connect(url)
    latencies: list[float] = []
    failures = 0
    last_seq = 0
    pacer = Pacer(rate)
    freshness = Freshness(url, poll_ms / 1e3)
    probes = ReadYourWrites(url, probe_every)

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
                    freshness.after_reply(seq, replied_at)
                    probes.after_reply(seq, replied_at, str(body["run_id"]))

    freshness.start()
    await probes.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client(c) for c in range(clients)))
    elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    fresh = await freshness.finish(last_seq) | await probes.finish()
    await nc.close()
    latencies.sort()
    return {"commands_per_s": len(latencies) / elapsed, "commands": len(latencies),
            "failures": failures, "p50_ms": latencies[len(latencies) // 2] * 1e3,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3, "last_seq": last_seq,
            "elapsed_s": elapsed, "client_cpu_share": cpu_s / elapsed} | fresh


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--runs", type=int, default=10, help="runs per client")
    parser.add_argument("--tag", default="b")
    parser.add_argument("--rate", type=float, default=None,
                        help="pace every client together to this many commands/s")
    parser.add_argument("--poll-ms", type=float, default=0,
                        help="poll the read side's position this often: each reply's freshness")
    parser.add_argument("--probe-every", type=int, default=0,
                        help="read the run's row back (wait_seq) after every K-th reply")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(drive(args.url, args.clients, args.runs, args.tag,
                                       args.rate, args.poll_ms, args.probe_every))))
