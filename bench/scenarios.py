"""The benchmark's scenarios, each against our system and its baselines (issue 8).

1. bulk throughput, both directions, 1 MiB and 16 KiB messages; CPU s per GB
2. small round trip (100 B each way): p50/p99, and what we add over a direct WebSocket
3. HTTP requests per second end to end (wrk → local port → relay → agent → simulated MFP)
4. set-up rate: both sides joining prepared sessions (token checks, started logs)
5. memory per idle paired session (RSS and PSS of the combined process)
6. large transfer: 64 MiB up and down through the real CLI, agent and simulator, with the
   peak growth of every process

Every function appends rows to a :class:`Results`; ``report`` makes the ratios.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from treq import collect
from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol

from bench.baselines import Baseline, TransitRelay
from bench.measure import bulk, percentile, round_trips, timed_concurrently
from bench.system import BenchSystem, cpu_seconds, process_memory
from remotecomm.testing.http import LocalPortClient, PatternBody, http_client
from remotecomm.testing.memory import GrowthMeter
from remotecomm.testing.processes import ChildProcess, free_port, run_command, sleep

MiB = 1024 * 1024
KiB = 1024


@dataclass
class Row:
    """One measured number."""

    scenario: str
    case: str
    path: str
    metric: str
    value: float
    unit: str
    higher_is_better: bool = True
    extra: dict = field(default_factory=dict)


class Results:
    """Every row of one run."""

    def __init__(self):
        self.rows: list[Row] = []
        self.notes: list[str] = []

    def add(self, scenario, case, path, metric, value, unit, higher_is_better=True, **extra):
        row = Row(scenario, case, path, metric, float(value), unit, higher_is_better, extra)
        self.rows.append(row)
        print(f"  {scenario:<14} {case:<28} {path:<26} {metric:<12} {value:>12.3f} {unit}",
              flush=True)
        return row

    def add_repeated(self, scenario, case, path, metric, values: list[float], unit,
                     higher_is_better=True, **extra):
        """The median of several repetitions, with every run kept (``runs``) for the
        spread."""
        runs = sorted(float(v) for v in values)
        median = runs[len(runs) // 2] if len(runs) % 2 else \
            (runs[len(runs) // 2 - 1] + runs[len(runs) // 2]) / 2
        return self.add(scenario, case, path, metric, median, unit, higher_is_better,
                        runs=runs, **extra)

    def as_json(self) -> list[dict]:
        return [asdict(row) for row in self.rows]


def ours(system: BenchSystem) -> str:
    """Our path's name in the results: ``remotecomm``, ``remotecomm (TLS)``, or a variant
    of scenario 4 (``remotecomm (PostgreSQL)``)."""
    if system.variant:
        return f"remotecomm ({system.variant})"
    return "remotecomm" + (" (TLS)" if system.tls else "")


# -- 1 and 2: bulk and round trips -------------------------------------------------------


REPEATS = 3  # the short scenarios (bulk, round trip, HTTP): medians over this many runs


async def _bulk_pair(results: Results, path: str, a, b, sizes, pid: int | None,
                     repeats: int) -> None:
    for chunk, total in sizes:
        label = "1 MiB" if chunk == MiB else f"{chunk // KiB} KiB"
        rates: dict[str, list[float]] = {"up": [], "down": []}
        cpu_per_gb: list[float] = []
        for _ in range(repeats):
            cpu_before = cpu_seconds(pid) if pid else None
            for direction, (sender, receiver) in (("up", (a, b)), ("down", (b, a))):
                rates[direction].append(await bulk(sender, receiver, total, chunk))
            if pid and chunk == MiB:
                cpu_per_gb.append((cpu_seconds(pid) - cpu_before) / (2 * total / 1e9))
        for direction, values in rates.items():
            results.add_repeated("1-bulk", f"{label} {direction}", path, "throughput", values,
                                 "MB/s")
        if cpu_per_gb:
            results.add_repeated("1-bulk", "CPU per GB at 1 MiB", path, "cpu", cpu_per_gb,
                                 "s/GB", higher_is_better=False)


async def bulk_and_round_trips(results: Results, target, *, quick: bool) -> None:
    """Scenarios 1 and 2 over one path (a baseline, or a session of our system): medians of
    :data:`REPEATS` runs (one when ``quick``)."""
    repeats = 1 if quick else REPEATS
    sizes = [(MiB, 8 * MiB), (16 * KiB, 4 * MiB)] if quick else \
        [(MiB, 128 * MiB), (16 * KiB, 32 * MiB)]
    if isinstance(target, BenchSystem):
        (session,) = await target.prepare(1)
        await target.join(session)
        a, b, path, pid = session.terminal, session.device_end, ours(target), target.server_pid
    else:
        a, b = await target.connect()
        path, pid = target.name, target.pid
    await _bulk_pair(results, path, a, b, sizes, pid, repeats)
    p50, p99 = [], []
    for _ in range(repeats):
        samples = await round_trips(a, b, 100 if quick else 1000)
        p50.append(percentile(samples, 0.5) * 1e6)
        p99.append(percentile(samples, 0.99) * 1e6)
    results.add_repeated("2-round-trip", "100 B p50", path, "latency", p50, "µs",
                         higher_is_better=False)
    results.add_repeated("2-round-trip", "100 B p99", path, "latency", p99, "µs",
                         higher_is_better=False)
    if isinstance(target, BenchSystem):
        await target.end(session)
    else:
        a.close()
        b.close()


async def machine_limit(results: Results, reactor, seconds: float = 3) -> None:
    """What this machine's loopback carries between native ends (iperf3, one stream), for
    scenario 1's sizes: where our Python ends, not the relay, cap a figure."""
    iperf3 = shutil.which("iperf3")
    if iperf3 is None:
        results.notes.append("iperf3 is missing: no machine-limit column")
        return
    for label, length in (("1 MiB", "1M"), ("16 KiB", "16K")):
        for direction, reverse in (("up", []), ("down", ["-R"])):
            values = []
            for _ in range(REPEATS):
                port = free_port()
                server = ChildProcess(reactor, [iperf3, "-s", "-1", "-B", "127.0.0.1",
                                                "-p", str(port)], cwd=Path("/"))
                for _ in range(50):
                    if "listening" in server.output.lower():
                        break
                    await sleep(reactor, 0.05)
                code, output = await run_command(reactor, [
                    iperf3, "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds),
                    "-l", length, "-J", *reverse], env={})
                await server.stop(timeout=5)
                if code != 0:
                    raise RuntimeError(f"iperf3 failed ({code}): {output[-500:]}")
                answer = json.loads(output)
                values.append(answer["end"]["sum_received"]["bits_per_second"] / 8 / 1e6)
            results.add_repeated("1-bulk", f"{label} {direction}", "machine limit (iperf3)",
                                 "throughput", values, "MB/s")


# -- 3: HTTP requests per second --------------------------------------------------------


async def wrk(reactor, url: str, connections: int, seconds: float,
              headers: dict[str, str]) -> dict:
    """Run wrk against ``url``; requests/s and latency percentiles."""
    args = ["/usr/bin/wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    code, output = await run_command(reactor, args + [url], env={})
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if code != 0 or rate is None:
        raise RuntimeError(f"wrk failed ({code}): {output[-1000:]}")
    latency = {}
    for name, value, unit in re.findall(r"\s(50|99)%\s+([\d.]+)(us|ms|s)\b", output):
        latency[name] = float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rate": float(rate.group(1)), "p50_us": latency.get("50"),
            "p99_us": latency.get("99"), "non_2xx": int(errors.group(1)) if errors else 0}


class _Splice(Protocol):
    """One side of a spliced pair of TCP connections (the transit tunnel's ends).

    With ``handshake`` it first waits for the transit relay's ``ok`` line (``ready``)."""

    def __init__(self, handshake: bool = False):
        self.partner = None
        self.early = []
        self.ready: Deferred = Deferred()
        self._handshake = handshake
        if not handshake:
            self.ready.callback(self)

    def connectionMade(self):
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data):
        if self._handshake and not self.ready.called:
            self.early.append(data)
            buffered = b"".join(self.early)
            if b"\n" in buffered:
                line, _, rest = buffered.partition(b"\n")
                self.early = [rest] if rest else []
                if line == b"ok":
                    self.ready.callback(self)
                else:
                    self.ready.errback(RuntimeError(f"transit relay said {line!r}"))
            return
        if self.partner is None:
            self.early.append(data)
        else:
            self.partner.transport.write(data)

    def join(self, partner: "_Splice"):
        self.partner = partner
        self.transport.registerProducer(partner.transport, True)
        for data in self.early:
            partner.transport.write(data)
        self.early = []

    def connectionLost(self, reason=None):
        if self.partner is not None:
            self.partner.transport.loseConnection()


class TransitTunnel:
    """An HTTP tunnel through the transit relay, for comparison with a session: a local port
    here; each connection meets a connection to the target through the relay by token."""

    def __init__(self, reactor, relay: TransitRelay, target_port: int):
        self.reactor = reactor
        self.relay = relay
        self.target_port = target_port

    async def listen(self) -> int:
        tunnel = self

        class Incoming(_Splice):
            def connectionMade(self):
                super().connectionMade()
                self.transport.pauseProducing()
                ensureDeferred(tunnel._connect(self))
        self.port = await TCP4ServerEndpoint(self.reactor, 0, backlog=1024,
                                             interface="127.0.0.1").listen(
            Factory.forProtocol(Incoming))
        return self.port.getHost().port

    async def _connect(self, incoming: _Splice) -> None:
        token = secrets.token_hex(32)
        sides = []
        for _ in range(2):
            side = _Splice(handshake=True)
            await TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.relay.port).connect(
                Factory.forProtocol(lambda side=side: side))
            side.transport.write(f"please relay {token} for side "
                                 f"{secrets.token_hex(8)}\n".encode())
            sides.append(side)
        target = _Splice()
        await TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.target_port).connect(
            Factory.forProtocol(lambda: target))
        await gatherResults([side.ready.addTimeout(10, self.reactor) for side in sides])
        incoming.join(sides[0])
        sides[0].join(incoming)
        sides[1].join(target)
        target.join(sides[1])
        incoming.transport.resumeProducing()

    async def stop(self):
        await self.port.stopListening()


async def http_rates(results: Results, reactor, path: str, url: str,
                     headers: dict[str, str], *, quick: bool) -> None:
    seconds = 2 if quick else 3
    for page, target in (("small page", "/api/status"), ("64 KiB file", "/firmware/image")):
        for connections in (1, 10):
            case = f"{page}, {connections} conn"
            runs = []
            for _ in range(1 if quick else REPEATS):
                measured = await wrk(reactor, url.rstrip("/") + target, connections, seconds,
                                     headers)
                if measured["non_2xx"]:
                    results.notes.append(f"{path} {case}: {measured['non_2xx']} non-2xx "
                                         f"answers")
                runs.append(measured)
            runs.sort(key=lambda m: m["rate"])
            middle = runs[len(runs) // 2]
            results.add_repeated("3-http", case, path, "rate", [m["rate"] for m in runs],
                                 "req/s", p50_us=middle["p50_us"], p99_us=middle["p99_us"])


# -- 4 and 5: set-up rate and idle memory ------------------------------------------------


class SetupRounds:
    """Scenario 4's rounds on one path: each round's rate and latency percentiles, added to
    the results as medians with every round kept."""

    def __init__(self):
        self.rates: list[float] = []
        self.p50s: list[float] = []
        self.p99s: list[float] = []

    def round(self, rate: float, durations: list[float]) -> None:
        self.rates.append(rate)
        self.p50s.append(percentile(durations, 0.5) * 1e3)
        self.p99s.append(percentile(durations, 0.99) * 1e3)

    def add_to(self, results: Results, path: str, count: int, concurrency: int) -> None:
        results.add_repeated("4-setup", f"{count} sessions, {concurrency} at once", path,
                             "rate", self.rates, "sessions/s")
        results.add_repeated("4-setup", "p50", path, "latency", self.p50s, "ms",
                             higher_is_better=False)
        results.add_repeated("4-setup", "p99", path, "latency", self.p99s, "ms",
                             higher_is_better=False)


async def setup_rate(results: Results, system: BenchSystem, count: int,
                     concurrency: int = 32, rounds: int = REPEATS) -> None:
    """``rounds`` times: ``count`` approved sessions joined, ``concurrency`` at once (timed),
    then ended (not timed).  The median round's rate, with every round's kept: one round's
    rate swings widely on this machine (250/s and 560/s in consecutive rounds on one
    server)."""
    measured = SetupRounds()
    for _ in range(rounds):
        sessions = await system.prepare(count)
        # Joined sessions stay open until the round ends: their sockets come from eight
        # addresses, within the relay's per-address limit (docs/operations.md, "Limits").
        rate, durations, _ = await timed_concurrently(
            count, concurrency, lambda i: system.join(
                sessions[i], bind=(ADDRESSES[i % 8], ADDRESSES[(i + 4) % 8])))
        measured.round(rate, durations)
        await timed_concurrently(len(sessions), 64, lambda i: system.end(sessions[i]))
    measured.add_to(results, ours(system), count, concurrency)


async def baseline_setup_rate(results: Results, baseline: Baseline, count: int,
                              concurrency: int = 32, rounds: int = REPEATS) -> None:
    measured = SetupRounds()
    for _ in range(rounds):
        rate, durations, pairs = await timed_concurrently(count, concurrency,
                                                          lambda i: baseline.connect())
        measured.round(rate, durations)
        for a, b in pairs:
            a.close()
            b.close()
    measured.add_to(results, baseline.name, count, concurrency)


ADDRESSES = [f"127.0.0.{i}" for i in range(2, 10)]


async def idle_memory(results: Results, system: BenchSystem, count: int,
                      chunk: int = 1000) -> list:
    """Scenario 5: ``count`` paired idle sessions, prepared and joined ``chunk`` at a time
    (so that none outlives its join window while the others are prepared)."""
    before = process_memory(system.server_pid)
    sessions: list = []
    for start in range(0, count, chunk):
        batch = await system.prepare(min(chunk, count - start))
        offset = len(sessions)
        await timed_concurrently(len(batch), 32, lambda i, batch=batch, offset=offset:
                                 system.join(batch[i], bind=(ADDRESSES[(offset + i) % 8],
                                                             ADDRESSES[(offset + i + 4) % 8])))
        sessions += batch
        print(f"  … {len(sessions)} idle sessions paired", flush=True)
    await sleep(system.reactor, 1.0)
    after = process_memory(system.server_pid)
    path = ours(system)
    for key in ("rss", "pss"):
        results.add("5-memory", f"{count} idle sessions, {key.upper()}", path, key,
                    (after[key] - before[key]) / count / KiB, "KiB/session",
                    higher_is_better=False)
    return sessions


async def baseline_idle_memory(results: Results, baseline: Baseline, count: int) -> None:
    before = process_memory(baseline.pid)
    _, _, pairs = await timed_concurrently(count, 32, lambda i: baseline.connect(
        bind=(ADDRESSES[i % 8], ADDRESSES[(i + 4) % 8])))
    await sleep(baseline.reactor, 1.0)
    after = process_memory(baseline.pid)
    for key in ("rss", "pss"):
        results.add("5-memory", f"{count} idle sessions, {key.upper()}", baseline.name, key,
                    (after[key] - before[key]) / count / KiB, "KiB/session",
                    higher_is_better=False)
    for a, b in pairs:
        a.close()
        b.close()


# -- 3 and 6 through the real CLI, agent and simulator -----------------------------------


class RealSession:
    """``remotecomm open`` holding a ``web-server`` session with the real agent and the
    simulated MFP (approved by the agent's test approver)."""

    def __init__(self, system: BenchSystem, device_id: str, app_ports: dict[str, int]):
        self.system = system
        self.device_id = device_id
        self.app_ports = app_ports

    async def start(self) -> None:
        setup = self.system.setup
        self.agent = setup.start_agent(self.device_id)
        self.simulator, _ = setup.start_simulator(self.device_id, {"olga": "x" * 12},
                                                  app_ports=self.app_ports)
        await self.simulator.wait_for_output("remote-panel on", timeout=20)
        await self.agent.wait_for_output("announced to", timeout=20)
        await setup.wait_device(self.device_id, online=True, timeout=20)
        self.cli: ChildProcess = setup.cli_process("open", self.device_id, "web-server")
        await self.cli.wait_for_output("Scripts: ", timeout=20)
        self.session = json.loads((setup.terminal_home / "sessions" /
                                   f"{self.device_id}.json").read_text())
        self.client = LocalPortClient(self.system.reactor, self.session)
        self.system.setups += 1

    @property
    def wrk_target(self) -> tuple[str, dict[str, str]]:
        host = self.session["local_url"].split("//", 1)[1].rstrip("/")
        return (f"http://127.0.0.1:{self.session['local_port']}",
                {"Host": host, self.session["access_header"]: self.session["access_secret"]})

    async def upload_firmware(self, size: int) -> None:
        response = await self.client.request("PUT", "/firmware", data=b"f" * size)
        await response.content()

    async def stop(self) -> None:
        self.cli.signal("INT")
        await self.cli.ended()


async def large_transfer(results: Results, real: RealSession, *, quick: bool) -> None:
    """Scenario 6: 64 MiB up and down through a session, peak growth of every process."""
    size = 8 * MiB if quick else 64 * MiB
    path = ours(real.system)
    meter = GrowthMeter({"server": real.system.server_pid, "agent": real.agent.pid,
                         "simulator": real.simulator.pid, "cli": real.cli.pid})
    meter.start()
    body = PatternBody(real.system.reactor, size, chunk=MiB)
    started = time.perf_counter()
    response = await real.client.request("PUT", "/firmware", data=body)
    answer = json.loads(await response.content())
    up = time.perf_counter() - started
    if answer.get("sha256") != body.sha256.hexdigest():
        raise RuntimeError(f"the upload arrived damaged: {answer}")
    started = time.perf_counter()
    response = await real.client.request("GET", "/firmware/image")
    digest = hashlib.sha256()
    await collect(response, digest.update)
    down = time.perf_counter() - started
    if digest.hexdigest() != body.sha256.hexdigest():
        raise RuntimeError("the download arrived damaged")
    label = f"{size // MiB} MiB"
    results.add("6-large", f"{label} up", path, "throughput", size / up / 1e6, "MB/s")
    results.add("6-large", f"{label} down", path, "throughput", size / down / 1e6, "MB/s")
    for name, grown in meter.growth().items():
        results.add("6-large", f"peak growth {name}", path, "growth", grown / MiB, "MiB",
                    higher_is_better=False)


async def direct_large_transfer(results: Results, reactor, web_port: int, *,
                                quick: bool) -> None:
    """Scenario 6's baseline: the same transfer straight to the simulated MFP."""
    size = 8 * MiB if quick else 64 * MiB
    http = http_client(reactor)
    body = PatternBody(reactor, size, chunk=MiB)
    started = time.perf_counter()
    response = await http.put(f"http://127.0.0.1:{web_port}/firmware", data=body)
    await response.content()
    up = time.perf_counter() - started
    started = time.perf_counter()
    response = await http.get(f"http://127.0.0.1:{web_port}/firmware/image")
    await collect(response, lambda data: None)
    down = time.perf_counter() - started
    label = f"{size // MiB} MiB"
    results.add("6-large", f"{label} up", "direct to the app", "throughput", size / up / 1e6,
                "MB/s")
    results.add("6-large", f"{label} down", "direct to the app", "throughput",
                size / down / 1e6, "MB/s")

