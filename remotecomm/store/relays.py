"""Transaction functions for the relay nodes table and their live byte counters."""

from __future__ import annotations

from typing import Iterable

from sqlalchemy import Connection, Row, func, insert, select, update

from remotecomm.store.schema import relay_nodes, session_connections, sessions


def record_heartbeat(connection: Connection, node: str, api_url: str, public_url: str,
                     state: str, open_sessions: int, capacity: int | None, at_us: int,
                     placed_states: Iterable[str]) -> tuple[Row | None, bool]:
    """Register a node or note that it is alive; its row before (``state``,
    ``emptied_us``, ``lost_us``; ``None``: new) and whether it has just become empty while
    draining: no open session on it, none placed on it in ``placed_states`` either
    (``emptied_us`` is set once, and cleared when it holds sessions again or takes new
    ones)."""
    before = connection.execute(select(relay_nodes.c.state, relay_nodes.c.emptied_us,
                                       relay_nodes.c.lost_us)
                                .where(relay_nodes.c.node == node)).first()
    empty = state == "draining" and open_sessions == 0 and not placed_sessions(
        connection, placed_states, node).get(node)
    emptied_now = empty and (before is None or before.emptied_us is None)
    values = dict(api_url=api_url, public_url=public_url, state=state,
                  last_heartbeat_us=at_us, open_sessions=open_sessions, lost_us=None,
                  capacity=capacity)
    if not empty:
        values["emptied_us"] = None
    elif emptied_now:
        values["emptied_us"] = at_us
    if before is None:
        connection.execute(insert(relay_nodes).values(node=node, registered_us=at_us, **values))
    else:
        connection.execute(update(relay_nodes).where(relay_nodes.c.node == node)
                           .values(**values))
    return before, emptied_now


def sessions_ended_when_lost(connection: Connection, node: str, lost_us: int) -> list[str]:
    """The session IDs the manager ended ``relay-lost`` when ``node`` was marked lost at
    ``lost_us``."""
    return list(connection.execute(select(sessions.c.session_id).where(
        sessions.c.relay_node == node, sessions.c.end_reason == "relay-lost",
        sessions.c.ended_us >= lost_us, sessions.c.session_id.is_not(None))).scalars())


def placed_sessions(connection: Connection, states: Iterable[str],
                    node: str | None = None) -> dict[str, int]:
    """How many sessions in ``states`` each node (or just ``node``) holds, by the sessions
    table (what the manager placed there, whether or not its sides have joined yet)."""
    on_node = (sessions.c.relay_node == node if node is not None
               else sessions.c.relay_node.is_not(None))
    return dict(connection.execute(
        select(sessions.c.relay_node, func.count()).where(
            on_node, sessions.c.state.in_(tuple(states)))
        .group_by(sessions.c.relay_node)).all())


def record_counters(connection: Connection, counters: Iterable[tuple[str, str, int, int]]) -> None:
    """Live byte counters ``(session_id, side, from_side, to_side)`` of connections that have
    not ended (an end log's final numbers are never overwritten)."""
    for session_id, side, from_side, to_side in counters:
        request_id = connection.execute(select(sessions.c.request_id)
                                        .where(sessions.c.session_id == session_id)).scalar()
        if request_id is None:
            continue
        connection.execute(update(session_connections).where(
            session_connections.c.request_id == request_id,
            session_connections.c.side == side,
            session_connections.c.ended_log_key.is_(None))
            .values(bytes_from_side=from_side, bytes_to_side=to_side))


def live_nodes(connection: Connection, heard_since_us: int) -> list:
    """Active nodes heard from since ``heard_since_us``, least loaded first."""
    return list(connection.execute(
        select(relay_nodes).where(relay_nodes.c.state == "active",
                                  relay_nodes.c.last_heartbeat_us >= heard_since_us)
        .order_by(relay_nodes.c.open_sessions, relay_nodes.c.node)))


def all_nodes(connection: Connection) -> list:
    """Every node the manager has heard of, by name."""
    return list(connection.execute(select(relay_nodes).order_by(relay_nodes.c.node)))


def set_node_draining(connection: Connection, name: str) -> bool:
    """Take a node out of placement now (its next heartbeat says the same, and when it is
    empty); whether it was an active node."""
    return connection.execute(update(relay_nodes).where(
        relay_nodes.c.node == name, relay_nodes.c.state == "active")
        .values(state="draining", emptied_us=None)).rowcount == 1


def set_node_active(connection: Connection, name: str) -> bool:
    """Put a draining node back into placement now; whether it was draining."""
    return connection.execute(update(relay_nodes).where(
        relay_nodes.c.node == name, relay_nodes.c.state == "draining")
        .values(state="active", emptied_us=None)).rowcount == 1


def node(connection: Connection, name: str):
    """One node's row, or ``None``."""
    return connection.execute(select(relay_nodes).where(relay_nodes.c.node == name)).first()


def mark_silent_nodes_lost(connection: Connection, silent_since_us: int, at_us: int) -> list[str]:
    """Mark nodes not heard from since ``silent_since_us`` lost (each once); their names."""
    silent = [row.node for row in connection.execute(
        select(relay_nodes.c.node).where(relay_nodes.c.state != "lost",
                                         relay_nodes.c.last_heartbeat_us < silent_since_us))]
    lost = []
    for name in silent:
        result = connection.execute(update(relay_nodes).where(
            relay_nodes.c.node == name, relay_nodes.c.state != "lost")
            .values(state="lost", lost_us=at_us))
        if result.rowcount == 1:
            lost.append(name)
    return lost


def sessions_on_nodes(connection: Connection, nodes: Iterable[str],
                      states: Iterable[str]) -> list:
    """Session rows placed on ``nodes`` that are in ``states``."""
    return list(connection.execute(select(sessions).where(
        sessions.c.relay_node.in_(tuple(nodes)), sessions.c.state.in_(tuple(states)))))
