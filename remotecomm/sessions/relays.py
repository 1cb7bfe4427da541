"""The manager's relay nodes: who is alive, where a new session goes, and lost relays.

Every relay node heartbeats to the manager (:meth:`RelayDirectory.record_heartbeat`,
reached through :class:`~remotecomm.relay.gateway.IManagerForRelay`); its first
heartbeat registers it in the ``relay_nodes`` table with the URL the manager
calls it at.  The directory:

- places a new session on the least loaded live node (S145): a node heard
  from within ``lost_after``, not draining, below its capacity; its load is
  the sessions the manager placed there (approved or active) over its
  capacity.  A node that refuses or does not answer is skipped;
- notes when a draining node is empty (its heartbeat says no open sessions
  and no session is placed there any more): logged and audited once;
- sends a node the manager's orders (end a session);
- finds nodes silent for longer than ``lost_after`` (counted from this
  manager's start at the earliest: while it was down it heard nobody): each is
  marked ``lost`` once (a guarded update, so several managers agree), and its
  approved and active sessions end ``relay-lost`` in the same transaction, each
  joined side with an end log the manager writes on the relay's behalf (marked
  ``ended_by`` manager).  A node that heartbeats again is active again and is
  told to end the sessions ended for it (it was cut off, not dead, and may
  still hold them); its late logs are still filed (a late end log beside the
  manager's) and reopen nothing.

It speaks to a node through :class:`~remotecomm.relay.gateway.IRelayForManager`,
made by ``connect(node, api_url)``: the relay of this very process, or an
HTTPS client.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

from sqlalchemy import Connection
from twisted.internet.defer import ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from remotecomm.clock import now_us, seconds_to_us
from remotecomm.relay.gateway import (DEFAULT_CAPACITY, Allocation, AllocationRequest, EndOrder,
                                      EndResult, GatewayError, Heartbeat, IRelayForManager,
                                      PeerUnavailable)
from remotecomm.service_errors import ServiceError
from remotecomm.sessions import lifecycle as lc, rows
from remotecomm.store import relays as relay_rows, sessions as session_rows
from remotecomm.store.audit import RELAY_DRAINED, RELAY_EMPTIED, RELAY_RESUMED, append_audit
from remotecomm.store.engine import Store

log = Logger()

LOST_AFTER = 30.0  # seconds without a heartbeat before a node counts as lost


class RelayError(ServiceError):
    """A request about a relay node refused."""


class NoRelayAvailable(PeerUnavailable):
    """No live relay node took the allocation."""


PLACED_STATES = (lc.APPROVED, lc.ACTIVE)  # a session in these holds its place on a node


def end_sessions_of_lost_nodes(connection: Connection, silent_since_us: int,
                               at_us: int) -> tuple[list[str], list]:
    """Mark silent nodes lost and end their sessions ``relay-lost``, each once; the nodes
    and the rows of the sessions ended.  Each side that joined gets its end log written
    by the manager on the relay's behalf (marked so); the relay's own, if it ever comes,
    is kept beside it and changes nothing."""
    lost = relay_rows.mark_silent_nodes_lost(connection, silent_since_us, at_us)
    ended = []
    for row in relay_rows.sessions_on_nodes(connection, lost, PLACED_STATES):
        before = rows.session_from_row(row)
        detail = f"relay node {row.relay_node} went silent"
        after = lc.end(before, "relay-lost", at_us, detail)
        rows.save_session(connection, before, after)
        if session_rows.end_connections_for_lost_relay(
                connection, row.request_id, row.session_id, at_us, "relay-lost",
                f"written by the manager: {detail}"):
            # (saving the lifecycle left the row's traffic columns as they were)
            rows.copy_traffic(connection, row,
                              session_rows.connection_records(connection, row.request_id))
        ended.append(row)
    return lost, ended


def _close(node: IRelayForManager) -> None:
    close = getattr(node, "close", None)  # an HTTPS client; the local node has none
    if close is not None:
        close()


class RelayDirectory:
    """Placement on live relay nodes, orders to a node, and the liveness of nodes."""

    def __init__(self, store: Store, clock: IReactorTime,
                 connect: Callable[[str, str], IRelayForManager],
                 lost_after: float = LOST_AFTER):
        self._store = store
        self._clock = clock
        self._connect = connect
        self._lost_after_us = seconds_to_us(lost_after)
        # A manager that just started has heard nobody yet: silence counts from here.
        self._listening_since_us = now_us(clock)
        self._nodes: dict[tuple[str, str], IRelayForManager] = {}
        # Sessions placed by this manager whose approval is not committed yet (the store
        # does not count them yet): by node.
        self._unsettled: Counter[str] = Counter()

    def _node(self, name: str, api_url: str) -> IRelayForManager:
        key = (name, api_url)
        if key not in self._nodes:
            # A node that came back at another address: its old client goes.
            for old in [k for k in self._nodes if k[0] == name]:
                _close(self._nodes.pop(old))
            self._nodes[key] = self._connect(name, api_url)
        return self._nodes[key]

    def close(self):
        """Close the HTTPS clients of remote nodes (at shutdown)."""
        for node in self._nodes.values():
            _close(node)

    # -- heartbeats ----------------------------------------------------------------------

    async def record_heartbeat(self, beat: Heartbeat) -> None:
        """A node is alive (its first heartbeat registers it); its live byte counters."""
        at = now_us(self._clock)

        def record(connection):
            before, emptied = relay_rows.record_heartbeat(
                connection, beat.relay_node, beat.api_url, beat.public_url, beat.state,
                beat.open_sessions, beat.capacity, at, PLACED_STATES)
            relay_rows.record_counters(connection, [
                (c.session_id, c.side, c.bytes_from_side, c.bytes_to_side)
                for c in beat.counters])
            if emptied:
                append_audit(connection, at, RELAY_EMPTIED, relay_node=beat.relay_node)
            ended = (relay_rows.sessions_ended_when_lost(connection, beat.relay_node,
                                                         before.lost_us)
                     if before is not None and before.state == "lost" else [])
            return (before.state if before is not None else None), emptied, ended

        before, emptied, ended_while_lost = await self._store.run(record)
        if ended_while_lost:
            # Back from a partition rather than a crash, it may still hold sessions the
            # manager ended for it: it ends them too (the logs it files then are late).
            self._end_on_node(beat.relay_node, beat.api_url, ended_while_lost)
        if before != beat.state:
            log.info("relay node {node} is {state} ({url})", node=beat.relay_node,
                     state=beat.state if before is not None else "registered",
                     url=beat.api_url)
        if emptied:
            log.info("relay node {node} is drained: it holds no session any more",
                     node=beat.relay_node)

    def _end_on_node(self, name: str, api_url: str, session_ids: list[str]) -> None:
        """Order ``name`` to end ``session_ids`` (without waiting; a failure is logged, the
        heartbeat that brought the node back stands)."""
        try:
            node = self._node(name, api_url)
        except Exception as e:
            log.warn("relay node {node} cannot be told to end {count} sessions: {error}",
                     node=name, count=len(session_ids), error=repr(e))
            return
        for session_id in session_ids:
            ensureDeferred(node.end_session(EndOrder(session_id=session_id,
                                                     reason="relay-lost"))).addErrback(
                lambda f, s=session_id: log.warn(
                    "relay node {node} did not end session {session_id}: {error}",
                    node=name, session_id=s, error=f.getErrorMessage()))

    async def end_sessions_of_lost_nodes(self) -> list:
        """Nodes silent past the bound become lost, once; the rows of the sessions that
        ended ``relay-lost`` because of it."""
        at = now_us(self._clock)
        silent_since = at - self._lost_after_us
        if silent_since < self._listening_since_us:
            return []  # not listening long enough to call anyone silent
        lost, ended = await self._store.run(end_sessions_of_lost_nodes, silent_since, at)
        for node in lost:
            log.warn("relay node {node} is lost (no heartbeat for {seconds:g} s); {count} "
                     "sessions end relay-lost", node=node, seconds=self._lost_after_us / 1e6,
                     count=sum(1 for row in ended if row.relay_node == node))
        return ended

    # -- placement and orders --------------------------------------------------------------

    def _placement(self, nodes: list, placed: dict[str, int]) -> list:
        """The live nodes that have room, least loaded first (the sessions placed on a node
        over its capacity)."""
        candidates = []
        for row in nodes:
            count = placed.get(row.node, 0) + self._unsettled[row.node]
            if row.capacity is not None and count >= row.capacity:
                continue
            candidates.append((count / (row.capacity or DEFAULT_CAPACITY), count, row.node, row))
        return [row for *_, row in sorted(candidates)]

    async def allocate(self, request: AllocationRequest) -> Allocation:
        """S145–S147 on the least loaded live node with room; the next one if a node
        refuses or does not answer.  The caller calls :meth:`settle` once the session's
        placement is stored (or given up)."""
        since = now_us(self._clock) - self._lost_after_us

        def nodes_and_load(connection):
            return (relay_rows.live_nodes(connection, since),
                    relay_rows.placed_sessions(connection, PLACED_STATES))

        nodes, placed = await self._store.run(nodes_and_load)
        candidates = self._placement(nodes, placed)
        for row in candidates:
            try:
                allocation = await self._node(row.node, row.api_url).allocate(request)
            except GatewayError as e:
                log.warn("relay node {node} did not allocate {request_id}: {error}",
                         node=row.node, request_id=request.request_id, error=str(e))
                continue
            self._unsettled[allocation.relay_node] += 1
            return allocation
        if not nodes:
            raise NoRelayAvailable(f"no relay node is live (none heard from within "
                                   f"{self._lost_after_us / 1e6:g} s and not draining)")
        raise NoRelayAvailable(
            f"of {len(nodes)} live relay nodes, {len(candidates)} refused or did not answer "
            f"and {len(nodes) - len(candidates)} were full")

    def settle(self, node: str) -> None:
        """A session :meth:`allocate` placed on ``node`` is stored (or given up): the store
        counts it from now on."""
        self._unsettled[node] -= 1
        if self._unsettled[node] <= 0:
            del self._unsettled[node]

    async def nodes(self) -> list[dict]:
        """Every node the manager has heard of, with its sessions and whether it is alive
        (heard from within ``lost_after``)."""
        heard_since = now_us(self._clock) - self._lost_after_us

        def nodes_and_load(connection):
            return (relay_rows.all_nodes(connection),
                    relay_rows.placed_sessions(connection, PLACED_STATES))

        nodes, placed = await self._store.run(nodes_and_load)
        return [{"node": row.node, "state": row.state, "public_url": row.public_url,
                 "open_sessions": row.open_sessions, "placed_sessions": placed.get(row.node, 0),
                 "capacity": row.capacity,
                 "load": (round(placed.get(row.node, 0) / row.capacity, 3)
                          if row.capacity else None),
                 "drained": row.state == "draining" and row.emptied_us is not None,
                 "emptied_us": row.emptied_us,
                 "last_heartbeat_us": row.last_heartbeat_us,
                 "lost_us": row.lost_us, "alive": row.last_heartbeat_us >= heard_since}
                for row in nodes]

    async def _order(self, node: str, order: str):
        """Tell a known, not lost node to drain or resume; its report."""
        row = await self._store.run(relay_rows.node, node)
        if row is None:
            raise RelayError(404, "relay-not-found", f"no relay node {node}")
        if row.state == "lost":
            raise RelayError(409, "relay-lost", f"relay node {node} is lost")
        try:
            return await getattr(self._node(row.node, row.api_url), order)()
        except (GatewayError, PeerUnavailable) as e:
            raise RelayError(503, "relay-unreachable", f"relay node {node} did not answer: "
                                                       f"{e}") from None

    async def drain(self, node: str, actor: str, source: str) -> dict:
        """Take no new sessions on ``node`` (it tells us so in its heartbeats from now on;
        the table says so at once); its running sessions go on until they end."""
        report = await self._order(node, "drain")
        at = now_us(self._clock)

        def drained(connection):
            relay_rows.set_node_draining(connection, node)
            append_audit(connection, at, RELAY_DRAINED, actor=actor, source_address=source,
                         relay_node=node, open_sessions=report.open_sessions)

        await self._store.run(drained)
        log.info("relay node {node} drains ({count} sessions still running), asked by {actor}",
                 node=node, count=report.open_sessions, actor=actor)
        return {"node": node, "state": "draining", "open_sessions": report.open_sessions}

    async def resume(self, node: str, actor: str, source: str) -> dict:
        """Put a draining ``node`` back into placement (undoing :meth:`drain` without
        restarting it, which would end its sessions)."""
        report = await self._order(node, "resume")
        at = now_us(self._clock)

        def resumed(connection):
            if relay_rows.set_node_active(connection, node):
                append_audit(connection, at, RELAY_RESUMED, actor=actor,
                             source_address=source, relay_node=node)

        await self._store.run(resumed)
        log.info("relay node {node} takes new sessions again, asked by {actor}", node=node,
                 actor=actor)
        return {"node": node, "state": "active", "open_sessions": report.open_sessions}

    async def end_session(self, node: str, order: EndOrder) -> EndResult | None:
        """Tell ``node`` to close both sides of a session; ``None`` if it is unknown."""
        row = await self._store.run(relay_rows.node, node)
        if row is None:
            return None
        return await self._node(row.node, row.api_url).end_session(order)
