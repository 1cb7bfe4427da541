"""Running our programs as real subprocesses on 127.0.0.1, for end-to-end tests.

:class:`ServerProcess` starts ``twistd -n <plugin>`` and waits until its
``/readyz`` answers 200; :func:`run_command` runs a command (the CLI) to
completion.  Every wait has a deadline, and a process that fails to start
reports its output in the exception.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sys
from pathlib import Path

from twisted.internet import defer, protocol, task

from remotecomm.testing.http import http_client

VENV_BIN = Path(sys.executable).parent


_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago.

    It comes from outside the kernel's ephemeral range: outgoing connections take their
    local ports from there, and one of them could take a port handed out here before the
    process it was meant for binds it.  No port is handed out twice by one process.
    """
    low, high = _ephemeral_range()
    candidates = range(20000, low) if low > 21000 else range(high + 1, 65536)
    for _ in range(500):
        port = random.choice(candidates)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def sleep(reactor, seconds: float) -> defer.Deferred:
    """A Deferred that fires after ``seconds``."""
    return task.deferLater(reactor, seconds, lambda: None)


class _Collector(protocol.ProcessProtocol):
    def __init__(self, stdin: bytes | None, log_path: Path | None = None):
        self.stdin = stdin
        self.output = bytearray()
        self.ended: defer.Deferred = defer.Deferred()
        self.exit_code: int | None = None
        # The output also goes to a log file as it arrives (so it can be followed).
        self._log = open(log_path, "ab", buffering=0) if log_path else None  # noqa: SIM115

    def connectionMade(self) -> None:
        if self.stdin is not None:
            self.transport.write(self.stdin)
            self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.output += data
        if self._log is not None:
            self._log.write(data)

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        value = reason.value
        # A process killed by a signal has no exit code: report minus the signal.
        self.exit_code = value.exitCode if value.exitCode is not None else -(value.signal or 0)
        if self._log is not None:
            self._log.close()
        self.ended.callback(self.exit_code)


def _environment(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


async def run_command(reactor, args: list[str], *, env: dict[str, str] | None = None,
                      stdin: bytes | None = None, timeout: float = 30,
                      cwd: str | None = None) -> tuple[int, str]:
    """Run ``args`` to completion; its exit code and combined output."""
    collector = _Collector(stdin)
    executable = args[0] if os.sep in args[0] else str(VENV_BIN / args[0])
    transport = reactor.spawnProcess(collector, executable, [executable, *args[1:]],
                                     env=_environment(env), path=cwd)
    call = reactor.callLater(timeout, transport.signalProcess, "KILL")
    code = await collector.ended
    if call.active():
        call.cancel()
    else:
        raise AssertionError(f"{args} did not finish within {timeout} s:\n"
                             f"{collector.output.decode('utf-8', 'replace')}")
    return code, collector.output.decode("utf-8", "replace")


class ChildProcess:
    """A long-running child process whose output a test watches."""

    def __init__(self, reactor, argv: list[str], *, cwd: Path, env: dict[str, str] | None = None,
                 name: str | None = None, log_path: Path | None = None):
        self._reactor = reactor
        self.log_path = log_path
        self._collector = _Collector(None, log_path)
        executable = argv[0] if os.sep in argv[0] else str(VENV_BIN / argv[0])
        self.plugin = name or argv[0]
        self._transport = reactor.spawnProcess(self._collector, executable,
                                               [executable, *argv[1:]],
                                               env=_environment(env), path=str(cwd))

    @property
    def pid(self) -> int:
        """The process ID."""
        return self._transport.pid

    @property
    def output(self) -> str:
        """Everything it wrote so far (stdout and stderr)."""
        return self._collector.output.decode("utf-8", "replace")

    @property
    def exit_code(self) -> int | None:
        """Its exit code, once it ended."""
        return self._collector.exit_code

    def ended(self) -> defer.Deferred:
        """Fires with the exit code when the process ends."""
        d = defer.Deferred()
        self._collector.ended.addBoth(lambda result: (d.callback(result), result)[1])
        return d

    async def wait_for_output(self, text: str, timeout: float = 10) -> float:
        """Wait until the process has printed ``text``; the seconds it took."""
        start = self._reactor.seconds()
        while text not in self.output:
            if self._reactor.seconds() - start > timeout:
                raise AssertionError(f"{self.plugin} did not print {text!r} within {timeout} s:"
                                     f"\n{self.output}")
            await sleep(self._reactor, 0.05)
        return self._reactor.seconds() - start

    async def wait_ready(self, url: str, ca_certificate: Path | None, timeout: float = 20) -> None:
        """Poll ``url`` until it answers 200; fail with the output if it dies or times out."""
        http = http_client(self._reactor, ca_certificate)
        deadline = self._reactor.seconds() + timeout
        while self._reactor.seconds() < deadline:
            if self.exit_code is not None:
                raise AssertionError(f"{self.plugin} exited with {self.exit_code}:\n{self.output}")
            try:
                response = await http.get(url, timeout=2)
                await response.content()
                if response.code == 200:
                    return
            except Exception:
                pass
            await sleep(self._reactor, 0.1)
        raise AssertionError(f"{self.plugin} not ready at {url} within {timeout} s:\n{self.output}")

    async def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
        if self.exit_code is not None:
            return self.exit_code
        ended = self.ended()
        self._transport.signalProcess("TERM")
        kill = self._reactor.callLater(timeout, self._kill)
        code = await ended
        if kill.active():
            kill.cancel()
        return code

    def _kill(self) -> None:
        if self.exit_code is None:
            os.kill(self.pid, signal.SIGKILL)

    def signal(self, name: str) -> None:
        """Send a signal ("INT", "TERM", "KILL")."""
        if self.exit_code is None:
            self._transport.signalProcess(name)


class ServerProcess(ChildProcess):
    """A ``twistd -n`` subprocess of one of our plugins."""

    def __init__(self, reactor, plugin: str, plugin_args: list[str], *, cwd: Path,
                 env: dict[str, str] | None = None, log_path: Path | None = None):
        super().__init__(reactor, ["twistd", "-n", "--pidfile=", plugin, *plugin_args],
                         cwd=cwd, env=env, name=plugin, log_path=log_path)
