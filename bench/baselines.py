"""The baselines: what a user would pick instead, run on 127.0.0.1 beside our relay.

Each baseline is a real program installed by the bench's setup step (never
vendored): ``socat`` from Debian (TCP_NODELAY, large buffers), the
magic-wormhole transit relay (PyPI, TCP and WebSocket modes) and websockify
(PyPI), both in the baselines virtualenv ``bench/.venv-baselines``.  Each
:class:`Baseline` starts its process and knows how to connect two ends
through it.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from twisted.internet.defer import ensureDeferred, gatherResults

from bench.ends import TcpListener, WsListener, tcp_connect, ws_connect
from remotecomm.testing.processes import ChildProcess, free_port, sleep

REPO = Path(__file__).resolve().parent.parent
BASELINES_VENV = REPO / "bench" / ".venv-baselines"


def baseline_tool(name: str) -> Path | None:
    """A program of the baselines virtualenv (or on PATH), if installed."""
    candidate = BASELINES_VENV / "bin" / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    return Path(found) if found else None


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (without connecting to it: a probe
    connection would reach the baseline's far side as a stray connection)."""
    wanted = f":{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(wanted) and fields[3] == "0A":
            return True
    return False


async def _wait_port(reactor, port: int, process: ChildProcess, timeout: float = 15) -> None:
    deadline = reactor.seconds() + timeout
    while reactor.seconds() < deadline:
        if process.exit_code is not None:
            raise RuntimeError(f"{process.plugin} exited: {process.output[-2000:]}")
        if _listening(port):
            return
        await sleep(reactor, 0.1)
    raise RuntimeError(f"{process.plugin} did not listen on {port}")


class Baseline:
    """A path between two ends: ``connect()`` gives ``(a, b)``, connected through it."""

    name = "?"
    process: ChildProcess | None = None

    async def start(self, reactor, folder: Path) -> None:
        self.reactor = reactor

    async def connect(self, bind: tuple[str, str] | None = None):
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop()


class DirectTcp(Baseline):
    """Two Python ends over one loopback TCP connection (the machine's limit here)."""

    name = "direct TCP"

    async def start(self, reactor, folder):
        await super().start(reactor, folder)
        self.listener = TcpListener(reactor)
        self.port = await self.listener.listen()

    async def connect(self, bind=None):
        a = await tcp_connect(self.reactor, self.port, bind=bind[0] if bind else None)
        return a, await self.listener.accept()

    async def stop(self):
        await super().stop()
        await self.listener.stop()


class Socat(DirectTcp):
    """socat forwarding TCP, TCP_NODELAY and large buffers on both sockets."""

    name = "socat"

    async def start(self, reactor, folder):
        await super().start(reactor, folder)
        self.front = free_port()
        socat = baseline_tool("socat")
        if socat is None:
            raise RuntimeError("socat is not installed (scripts/bench installs it)")
        options = "nodelay,rcvbuf=1048576,sndbuf=1048576"
        self.process = ChildProcess(reactor, [
            str(socat), f"TCP-LISTEN:{self.front},bind=127.0.0.1,reuseaddr,fork,backlog=1024,"
            f"{options}", f"TCP:127.0.0.1:{self.port},{options}"], cwd=folder, name="socat")
        await _wait_port(reactor, self.front, self.process)

    async def connect(self, bind=None):
        a = await tcp_connect(self.reactor, self.front, bind=bind[0] if bind else None)
        return a, await self.listener.accept()


class TransitRelay(Baseline):
    """magic-wormhole's transit relay: both ends connect and meet by token."""

    def __init__(self, websocket: bool):
        self.websocket = websocket
        self.name = "transit relay " + ("WebSocket" if websocket else "TCP")

    async def start(self, reactor, folder):
        await super().start(reactor, folder)
        twist = BASELINES_VENV / "bin" / "twist"
        if not twist.exists():
            raise RuntimeError("magic-wormhole-transit-relay is not installed "
                               "(scripts/bench installs it)")
        self.port = free_port()
        listen = f"tcp:{self.port}:interface=127.0.0.1"
        args = [str(twist), "transitrelay"] + (
            ["--port", f"tcp:{free_port()}:interface=127.0.0.1", "--websocket", listen]
            if self.websocket else ["--port", listen])
        self.process = ChildProcess(reactor, args, cwd=folder, name="transit-relay")
        await _wait_port(reactor, self.port, self.process)

    async def connect(self, bind=None):
        token = secrets.token_hex(32)
        greetings = [f"please relay {token} for side {secrets.token_hex(8)}\n".encode()
                     for _ in range(2)]
        if self.websocket:
            connecting = [ensureDeferred(ws_connect(
                self.reactor, f"ws://127.0.0.1:{self.port}/", self.port, greeting=g,
                expect_ok=True, bind=bind[i] if bind else None))
                for i, g in enumerate(greetings)]
        else:
            connecting = [ensureDeferred(tcp_connect(
                self.reactor, self.port, greeting=g, expect_ok=True,
                bind=bind[i] if bind else None)) for i, g in enumerate(greetings)]
        ends = await gatherResults(connecting)
        return ends[0], ends[1]


class Websockify(DirectTcp):
    """websockify: a WebSocket client on one side, the TCP server it forwards to on the other."""

    name = "websockify"

    async def start(self, reactor, folder):
        await super().start(reactor, folder)
        tool = baseline_tool("websockify")
        if tool is None:
            raise RuntimeError("websockify is not installed (scripts/bench installs it)")
        self.front = free_port()
        self.process = ChildProcess(reactor, [str(tool), f"127.0.0.1:{self.front}",
                                              f"127.0.0.1:{self.port}"], cwd=folder,
                                    name="websockify")
        await _wait_port(reactor, self.front, self.process)

    async def connect(self, bind=None):
        a = await ws_connect(self.reactor, f"ws://127.0.0.1:{self.front}/", self.front,
                             protocols=["binary"], bind=bind[0] if bind else None)
        return a, await self.listener.accept()


class DirectWebSocket(Baseline):
    """Two autobahn ends over one WebSocket, no relay (what our clients cost by themselves)."""

    name = "direct WebSocket"

    async def start(self, reactor, folder):
        await super().start(reactor, folder)
        self.listener = WsListener(reactor)
        self.port = await self.listener.listen()

    async def connect(self, bind=None):
        a = await ws_connect(self.reactor, f"ws://127.0.0.1:{self.port}/", self.port,
                             bind=bind[0] if bind else None)
        return a, await self.listener.accept()

    async def stop(self):
        await self.listener.stop()
