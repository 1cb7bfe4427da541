"""Fakes for relay tests: a connection that records what the core does to it."""

from __future__ import annotations

from twisted.internet.task import Clock
from zope.interface import implementer

from remotecomm.relay.core import IRelayConnection, RelayCore
from remotecomm.relay.node import RelayNode
from remotecomm.sessions.relays import PLACED_STATES, RelayDirectory
from remotecomm.store import relays as relay_rows


@implementer(IRelayConnection)
class FakeConnection:
    """One side's connection, in memory."""

    def __init__(self, name: str = "side"):
        self.name = name
        self.sent: list[bytes] = []
        self.closed_with: tuple[int, str] | None = None
        self.paused = False
        self.is_established = False
        self.partner = None

    def send(self, message: bytes) -> None:
        self.sent.append(message)

    def close(self, code: int, reason: str) -> None:
        if self.closed_with is None:
            self.closed_with = (code, reason)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def established(self) -> None:
        self.is_established = True

    def pair(self, partner) -> None:
        self.partner = partner


def standalone_node(clock=None, node: str = "relay-1",
                    public_url: str = "wss://relay.test/relay") -> RelayNode:
    """A relay node whose core has no manager and no outbox: for tests of allocation."""
    return RelayNode(RelayCore(clock or Clock(), None, None), node, public_url)


def local_directory(store, clock, node: RelayNode, lost_after: float = 10**6) -> RelayDirectory:
    """A manager's relay directory that knows ``node`` (registered by one heartbeat now)
    and reaches it in this process: for tests of placement and orders."""
    directory = RelayDirectory(store, clock, lambda name, api_url: node, lost_after)
    store.run_sync(relay_rows.record_heartbeat, node.node, "https://relay.test",
                   node.public_url, "active", 0, node.capacity,
                   int(clock.seconds() * 1_000_000), PLACED_STATES)
    return directory
