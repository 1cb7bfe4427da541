"""Our system under test: the shipped ``twistd remotecomm``, Prosody, bench devices, sessions.

Sessions are prepared through the real flow and nothing else: a bench user
logs in from several terminals (once), each session is requested over the
REST API, the device's test approver answers YES over XMPP (the manager is
configured to allow it, as the benchmark's own config says), the terminal
polls for its token once, and the device gets its token in session-ready.
Joining the relay, with the tokens, is what scenario 4 times.

A *bench device* is the real device agent's XMPP side (announce, approvals,
test approver) running in this process with :class:`BenchLinks` in place of
its relay links: it keeps each session-ready until the scenario joins it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred, gatherResults

from bench.ends import EnvelopeEnd
from remotecomm.admin import commands as admin
from remotecomm.device.config import load_device_config
from remotecomm.device.tap import build_service as build_device
from remotecomm.relay.client import RelayClient
from remotecomm.testing.http import call_api, http_client
from remotecomm.testing.processes import sleep
from remotecomm.testing.servers import PASSWORD, ServerSetup
from remotecomm.xmpp.payloads import SessionReady

USER = "bench"
UNIT = "bench"
# One bench user holds thousands of sessions from eight loopback addresses: a relay takes
# them all.
RELAY_LIMITS_LINES = "max_connections_per_address = 100000\ncapacity = 100000\n"
RELAY_LIMITS = "[relay]\n" + RELAY_LIMITS_LINES


class BenchLinks:
    """A bench device's relay side: holds session-ready until told to join."""

    def __init__(self):
        self.ready: dict[str, SessionReady] = {}
        self._waiting: dict[str, Deferred] = {}
        self.clients: dict[str, RelayClient] = {}
        self._sessions: dict[str, str] = {}  # request ID -> session ID

    def join(self, ready: SessionReady) -> None:
        self.ready[ready.session_id] = ready
        self._sessions[ready.request_id] = ready.session_id
        waiting = self._waiting.pop(ready.session_id, None)
        if waiting is not None:
            waiting.callback(ready)

    def wait(self, session_id: str) -> Deferred:
        if session_id in self.ready:
            return _fired(self.ready[session_id])
        waiting = self._waiting[session_id] = Deferred()
        return waiting

    def end(self, request_id: str) -> bool:
        """S292: the manager asks the device to end a session: close normally."""
        client = self.clients.pop(self._sessions.get(request_id, ""), None)
        if client is None:
            return False
        client.end()
        return True


def _fired(value) -> Deferred:
    d: Deferred = Deferred()
    d.callback(value)
    return d


@dataclass
class Session:
    """A prepared (approved) session: both tokens in hand, nobody joined yet."""

    request_id: str
    session_id: str
    relay_url: str
    terminal_token: str
    device: str
    ready: SessionReady
    links: BenchLinks
    terminal: EnvelopeEnd | None = None
    device_end: EnvelopeEnd | None = None


class BenchSystem:
    """The product as the benchmark runs it (plain WebSockets, or TLS)."""

    def __init__(self, reactor, folder: Path, *, tls: bool, devices: int = 2,
                 terminals: int = 2, real_device: str | None = None,
                 relays: tuple[str, ...] = (), store_url: str | None = None,
                 lost_after: str = "3s", variant: str | None = None):
        """``relays``: relay-only processes to start by node name (none: the server is one
        process, ``--role both``), lost after ``lost_after`` of silence; ``store_url``: the
        manager's store (default SQLite); ``variant``: what the results call this set-up
        when it is not the normal one."""
        self.reactor = reactor
        self.variant = variant
        self.tls = tls
        self.relay_nodes = relays
        self.device_ids = [f"bench-{i:04d}" for i in range(1, devices + 1)]
        self.terminal_ids = [f"bench-terminal-{i:04d}" for i in range(1, terminals + 1)]
        self.real_device = real_device
        # One bench user holds every session of scenarios 4 and 5 (thousands at once, from
        # eight loopback addresses): the per-user, per-device and per-address limits are
        # raised for it, nothing else.
        self.setup = ServerSetup(reactor, folder, tls=tls, separate_relay=bool(relays),
                                 lost_after=lost_after, extra_config=(
            "[sessions]\nallow_test_approver = true\n"
            "max_open_per_user = 100000\nmax_open_per_device = 10000\n"
            + (RELAY_LIMITS if not relays else "")
            + (f"[store]\nurl = '{store_url}'\n" if store_url else "")))
        self.tokens: dict[str, str] = {}
        self.links: dict[str, BenchLinks] = {}
        self._device_services = []
        self._pairs: list[tuple[str, str]] = []
        self.setups = 0

    @property
    def ca(self) -> Path | None:
        return self.setup.ca if self.tls else None

    @property
    def server_pid(self) -> int:
        return self.setup.server.pid

    async def start(self, real_apps: dict[str, str] | None = None,
                    provider_admin: str | None = None) -> None:
        """Provision, start Prosody, the server and its relays, connect the bench devices,
        log in.

        ``real_apps``: the agent config's ``[apps]`` of the real device (a real agent and
        the simulator are started by :class:`bench.scenarios.RealSession`).
        ``provider_admin``: also provision a provider admin of that name.
        """
        devices = self.device_ids + ([self.real_device] if self.real_device else [])
        self.setup.provision({UNIT: {"users": [USER], "devices": devices}})
        if provider_admin:
            admin.add_user(self.setup.server_config(), self.reactor, provider_admin,
                           provider_admin.title(), PASSWORD, None, "technician",
                           provider_admin=True)
        if self.real_device:
            self.setup.configure_agent(self.real_device, real_apps or {},
                                       test_approver="bench")
        await self.setup.start()
        await gatherResults([ensureDeferred(self.setup.start_relay(node, RELAY_LIMITS_LINES))
                             for node in self.relay_nodes])
        await self.setup.login(USER)
        for device_id in self.device_ids:
            config_path = self.setup.configure_agent(device_id, {
                "web-server": "http://127.0.0.1:9"}, test_approver="bench")
            links = self.links[device_id] = BenchLinks()
            service = build_device(load_device_config(config_path), self.reactor, links=links)
            service.startService()
            self._device_services.append(service)
        http = http_client(self.reactor, self.ca)
        for terminal_id in self.terminal_ids:
            response = await http.post(self.setup.url + "/api/v1/login", json={
                "user_id": USER, "password": PASSWORD, "terminal_id": terminal_id})
            answer = await response.json()
            if response.code != 200:
                raise RuntimeError(f"bench login failed: {answer}")
            self.tokens[terminal_id] = answer["token"]
        for device_id in self.device_ids:
            await self.setup.wait_device(device_id, online=True, timeout=30)
        self._pairs = [(d, t) for t in self.terminal_ids for d in self.device_ids]

    async def stop(self) -> None:
        for service in self._device_services:
            await service.stopService()
        await self.setup.stop()

    async def _api(self, terminal_id: str, method: str, path: str, body=None):
        return await call_api(http_client(self.reactor, self.ca), self.setup.url, method, path,
                              terminal_id=terminal_id, token=self.tokens[terminal_id],
                              body=body, timeout=20)

    async def prepare(self, count: int, concurrency: int = 16) -> list[Session]:
        """``count`` approved sessions over distinct (device, terminal) pairs."""
        if count > len(self._pairs):
            raise ValueError(f"{count} sessions need more devices x terminals than "
                             f"{len(self._pairs)}")
        pairs, self._pairs = self._pairs[:count], self._pairs[count:]
        semaphore = DeferredSemaphore(concurrency)
        return await gatherResults([
            semaphore.run(lambda d=d, t=t: ensureDeferred(self._prepare_one(d, t)))
            for d, t in pairs])

    async def _prepare_one(self, device_id: str, terminal_id: str) -> Session:
        code, answer = await self._api(terminal_id, "POST", "/api/v1/sessions",
                                       {"device_id": device_id, "app_id": "web-server"})
        if code != 202 and code != 200:
            raise RuntimeError(f"session request refused: {code} {answer}")
        request_id = answer["request_id"]
        for _ in range(400):
            code, answer = await self._api(terminal_id, "GET", f"/api/v1/sessions/{request_id}")
            if answer.get("state") not in ("pending", "allocating"):
                break
            await sleep(self.reactor, 0.05)
        if answer.get("state") != "approved":
            raise RuntimeError(f"session not approved: {answer}")
        links = self.links[device_id]
        ready = await links.wait(answer["session_id"])
        return Session(request_id, answer["session_id"], answer["relay_url"],
                       answer["terminal_token"], device_id, ready, links)

    async def join(self, session: Session, bind: tuple[str, str] | None = None) -> None:
        """Both sides join the relay with their tokens; returns when both are established."""
        device_end, terminal_end = EnvelopeEnd(), EnvelopeEnd()
        device = device_end.client = RelayClient(
            self.reactor, session.ready.relay_url, "device", session.session_id,
            session.ready.token, self.ca, device_end.frame, bind[0] if bind else None)
        terminal = terminal_end.client = RelayClient(
            self.reactor, session.relay_url, "terminal", session.session_id,
            session.terminal_token, self.ca, terminal_end.frame, bind[1] if bind else None)
        session.links.clients[session.session_id] = device
        await gatherResults([device.connect(), terminal.connect()])
        session.device_end, session.terminal = device_end.attach(), terminal_end.attach()
        self.setups += 1

    async def end(self, session: Session) -> None:
        """The terminal ends normally; the manager tells the device, which closes."""
        await session.terminal.client.end()
        await session.device_end.closed

    async def metrics(self) -> dict[str, float]:
        return await self.setup.metrics()

    async def relay_metrics(self) -> dict[str, float]:
        """The relays' /metrics: the server's, or the sum over the relay processes."""
        if not self.relay_nodes:
            return await self.setup.metrics()
        total: dict[str, float] = {}
        for node in self.relay_nodes:
            for name, value in (await self.setup.metrics(
                    self.setup.relay_ports[node][1])).items():
                total[name] = total.get(name, 0.0) + value
        return total


def raise_fd_limit(wanted: int = 65536) -> int:
    """Raise this process's open-file limit (children inherit it): to ``wanted`` where
    allowed (root may raise the hard limit), else to the hard limit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), max(hard, wanted)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def process_memory(pid: int) -> dict[str, int]:
    """RSS and PSS of a process in bytes (``/proc/PID/smaps_rollup``)."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            values[name.lower()] = int(rest.split()[0]) * 1024
    return values


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its descendants so far (socat and
    websockify fork a process per connection), including children that already exited."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    total, unvisited = 0, [pid]
    while unvisited:
        current = unvisited.pop()
        try:
            fields = _stat(current)
        except OSError:
            continue
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))
        unvisited.extend(children.get(current, []))
    return total / os.sysconf("SC_CLK_TCK")

