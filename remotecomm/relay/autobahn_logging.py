"""autobahn's per-connection debug message, formatted only when something reads it.

At every connection autobahn builds a debug message of its ~40 protocol
options with :func:`pprint.pformat` -- before it knows whether anything logs
at debug level.  That formatting was a quarter of a bench client's CPU during
set-ups and several per cent of the relay's (``scripts/bench --profile
setup``).  :func:`format_debug_lazily` makes the value handed to the logger
format itself when a debug observer reads it, so the message is unchanged
and costs nothing otherwise.  Both the relay and :mod:`remotecomm.relay.client`
call it on import.
"""

from __future__ import annotations

import pprint

from autobahn.websocket import protocol as _protocol


class LazyPformat:
    """``pprint.pformat(value)``, computed when formatted or converted to text."""

    __slots__ = ("_value",)

    def __init__(self, value, *args, **kwargs):
        self._value = value

    def __str__(self) -> str:
        return pprint.pformat(self._value)

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _timings_text(timings) -> str:
    return pprint.pformat(timings._timings)


def format_debug_lazily() -> None:
    """Make autobahn's WebSocket protocol module format its debug values lazily (once)."""
    if _protocol.pformat is LazyPformat:
        return
    _protocol.pformat = LazyPformat
    # Its one use of pformat whose result must be text (``str(Timings)``).
    _protocol.Timings.__str__ = _timings_text
