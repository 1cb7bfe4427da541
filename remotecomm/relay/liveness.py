"""A relay node's heartbeat to the manager: it is alive, where it is, and live counters.

Every ``interval`` seconds (and once at start) :class:`HeartbeatSender` sends a
:class:`~remotecomm.relay.gateway.Heartbeat` through the seam: the node's name,
the URL the manager calls it at, the URL devices and terminals reach it at,
whether it takes new sessions, how many it holds and how many it can take, and
the byte counters of sessions that moved since the last heartbeat (at most
:data:`~remotecomm.relay.gateway.MAX_COUNTERS`; the rest wait for the next
one).  The first heartbeat registers the node; a node the manager does not
hear from for long enough counts as lost and its sessions end.  A draining
node that has no session left says so in its log (and, by its heartbeat, to
the manager).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from remotecomm.relay.gateway import MAX_COUNTERS, Heartbeat, IManagerForRelay, SessionCounters
from remotecomm.relay.node import RelayNode

log = Logger()

HEARTBEAT_INTERVAL = 5.0


class HeartbeatSender:
    """Sends the node's heartbeats; a failure is logged once per outage, not per beat, and
    ``on_manager_back`` is called when a heartbeat gets through after one failed (the log
    outbox then retries at once)."""

    def __init__(self, node: RelayNode, manager: IManagerForRelay, clock: IReactorTime,
                 api_url: str, interval: float = HEARTBEAT_INTERVAL,
                 on_manager_back: Callable[[], None] = lambda: None):
        self._node = node
        self._on_manager_back = on_manager_back
        self._manager = manager
        self._api_url = api_url
        self._interval = interval
        self._reported: dict[tuple[str, str], tuple[int, int]] = {}
        self._failing = False
        self._emptied = False
        self._loop = LoopingCall(self.beat)
        self._loop.clock = clock

    def start(self) -> None:
        self._loop.start(self._interval, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def heartbeat(self) -> tuple[Heartbeat, set]:
        """The heartbeat to send now (counters of what moved since the last one), and the
        connections the node holds."""
        core = self._node.core
        counters = []
        live = set()
        for session_id, session in core.sessions.items():
            for side_name, side in session.sides.items():
                key = (session_id, side_name)
                live.add(key)
                now = (side.bytes_from_side, side.bytes_to_side)
                if self._reported.get(key) != now and len(counters) < MAX_COUNTERS:
                    counters.append(SessionCounters(session_id=session_id, side=side_name,
                                                    bytes_from_side=now[0],
                                                    bytes_to_side=now[1]))
        self._note_emptied()
        return Heartbeat(relay_node=self._node.node, api_url=self._api_url,
                         public_url=self._node.public_url,
                         state="draining" if self._node.draining else "active",
                         open_sessions=len(core.sessions), counters=tuple(counters),
                         capacity=self._node.capacity), live

    def _note_emptied(self) -> None:
        """A draining node says once in its log that it is empty (its heartbeat tells the
        manager the same: draining, no open sessions)."""
        emptied = self._node.draining and self._node.empty
        if emptied and not self._emptied:
            log.info("relay node {node} is drained: no sessions left, it can be stopped",
                     node=self._node.node)
        self._emptied = emptied

    def beat(self):
        """Send one heartbeat (errors are logged; the loop goes on)."""
        beat, live = self.heartbeat()
        self._reported = {key: value for key, value in self._reported.items() if key in live}

        def sent(_) -> None:
            for counter in beat.counters:
                self._reported[(counter.session_id, counter.side)] = (counter.bytes_from_side,
                                                                      counter.bytes_to_side)
            if self._failing:
                log.info("the manager hears relay node {node} again", node=beat.relay_node)
                self._failing = False
                self._on_manager_back()

        def failed(failure) -> None:
            if not self._failing:
                log.warn("heartbeat of relay node {node} not taken: {error}",
                         node=beat.relay_node, error=failure.getErrorMessage())
            self._failing = True

        return ensureDeferred(self._manager.heartbeat(beat)).addCallbacks(sent, failed)
