"""HTTP clients for tests: no persistent connections left behind in the reactor."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import treq
from twisted.internet import defer, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import TaskDone, TaskFailed, TaskStopped, cooperate, deferLater
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

from remotecomm.tls import https_policy


def http_client(reactor, ca_certificate: Path | None = None) -> treq.client.HTTPClient:
    """A treq client that trusts ``ca_certificate`` and closes every connection after use."""
    policy = https_policy(ca_certificate or None)
    pool = HTTPConnectionPool(reactor, persistent=False)
    return treq.client.HTTPClient(Agent(reactor, contextFactory=policy, pool=pool))


async def call_api(http: treq.client.HTTPClient, base_url: str, method: str, path: str, *,
                   terminal_id: str, token: str | None = None, unit_id: str | None = None,
                   body: dict | None = None, timeout: float = 5) -> tuple[int, dict]:
    """One call of the manager's REST API as a terminal: its status and JSON answer (raises
    when the manager does not answer within ``timeout``)."""
    headers = {"X-Remotecomm-Terminal": terminal_id}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if unit_id:
        headers["X-Remotecomm-Unit"] = unit_id
    if body is not None:
        headers["Content-Type"] = "application/json"
    response = await http.request(method, base_url + path, headers=headers, timeout=timeout,
                                  data=json.dumps(body).encode() if body is not None else None)
    return response.code, json.loads(await response.content())


class LocalPortClient:
    """HTTP to a ``remotecomm open`` session's local port, as a script would use it.

    ``session`` is the marker file ``open`` writes (local URL, port, access header);
    every host name is connected to 127.0.0.1 on that port.
    """

    def __init__(self, reactor, session: dict, *, authenticated: bool = True):
        self.base_url = session["local_url"].rstrip("/")
        self.port = int(session["local_port"])
        self.header = {session["access_header"]: session["access_secret"]} \
            if authenticated else {}
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        endpoints = _LoopbackEndpoints(reactor, self.port)
        self.http = treq.client.HTTPClient(Agent.usingEndpointFactory(reactor, endpoints,
                                                                      pool=self.pool))

    def request(self, method: str, path: str, headers: dict | None = None, **kwargs):
        """``method`` on ``path`` of the session (a treq request)."""
        return self.http.request(method, self.base_url + path,
                                 headers={**self.header, **(headers or {})}, **kwargs)


@implementer(IAgentEndpointFactory)
class _LoopbackEndpoints:
    def __init__(self, reactor, port: int):
        self._reactor = reactor
        self._port = port

    def endpointForURI(self, uri):
        return TCP4ClientEndpoint(self._reactor, "127.0.0.1", self._port, timeout=5)


@implementer(IBodyProducer)
class PatternBody:
    """A request body of ``size`` deterministic bytes, made as it is sent (never all in
    memory); ``delay`` seconds between ``chunk``-sized pieces; ``sha256`` and ``sent`` tell
    what went out."""

    def __init__(self, reactor, size: int, chunk: int = 256 * 1024, delay: float = 0.0):
        self.length = size
        self.sent = 0
        self.sha256 = hashlib.sha256()
        self._reactor = reactor
        self._chunk = chunk
        self._delay = delay
        self._task = None
        self._stopped = False

    @staticmethod
    def expected_sha256(size: int) -> str:
        """The SHA-256 of a pattern body of ``size`` bytes."""
        digest = hashlib.sha256()
        block = bytes(range(256)) * 4096
        for start in range(0, size, len(block)):
            digest.update(block[:min(len(block), size - start)])
        return digest.hexdigest()

    def _pieces(self, consumer):
        block = bytes(range(256)) * (max(self._chunk, 256) // 256 + 1)
        while self.sent < self.length and not self._stopped:
            size = min(self._chunk, self.length - self.sent)
            offset = self.sent % 256
            piece = block[offset:offset + size]
            consumer.write(piece)
            self.sha256.update(piece)
            self.sent += size
            if self._delay and self.sent < self.length:
                yield deferLater(self._reactor, self._delay, lambda: None)
            else:
                yield None

    def startProducing(self, consumer):
        self._task = cooperate(self._pieces(consumer))
        return self._task.whenDone().addCallback(lambda _: None)

    def pauseProducing(self):
        self._task.pause()

    def resumeProducing(self):
        self._task.resume()

    def stopProducing(self):
        # Called from inside consumer.write when the connection drops: stop the task
        # outside of its own work unit.
        self._stopped = True
        self._reactor.callLater(0, self._stop_task)

    def _stop_task(self):
        try:
            self._task.stop()
        except (TaskDone, TaskStopped, TaskFailed):
            pass


async def raw_exchange(reactor, port: int, data: bytes, timeout: float = 5) -> bytes:
    """Send ``data`` as it is to 127.0.0.1:``port`` (a request head, part of a body …) and
    return all that came back before the server closed (aborted after ``timeout``)."""
    received, closed = [], defer.Deferred()

    class Raw(protocol.Protocol):
        def connectionMade(self):
            self.transport.write(data)

        def dataReceived(self, chunk):
            received.append(chunk)

        def connectionLost(self, reason):
            closed.callback(None)

    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    connected = await endpoint.connect(protocol.Factory.forProtocol(Raw))
    abort = reactor.callLater(timeout, connected.transport.abortConnection)
    await closed
    if abort.active():
        abort.cancel()
    return b"".join(received)
