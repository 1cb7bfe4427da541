"""autobahn's debug-log values, formatted only when something reads them.

autobahn's WebSocket protocol builds the values of its debug messages before
it knows whether anything logs at debug level: at every connection a
pretty-printed list of its ~40 options (:func:`pprint.pformat`), and at every
read and every send three highlighted strings (``hltype``, ``hlval``).  That was
a quarter of a bench client's CPU during set-ups and several per cent of the
relay's per message (``scripts/bench --profile``).  :func:`format_debug_lazily`
hands the logger values that format themselves when a debug observer reads
them: the messages are unchanged and cost nothing otherwise.  The relay and
:mod:`remotecomm.relay.client` call it on import.
"""

from __future__ import annotations

import pprint

from autobahn import util
from autobahn.twisted import websocket as _twisted_websocket
from autobahn.websocket import protocol as _protocol


class Lazy:
    """``module.name(*args, **kwargs)``, called when formatted or converted to text."""

    __slots__ = ("_module", "_name", "_args", "_kwargs")

    def __init__(self, module, name: str, args: tuple, kwargs: dict):
        self._module = module
        self._name = name
        self._args = args
        self._kwargs = kwargs

    def __str__(self) -> str:
        return str(getattr(self._module, self._name)(*self._args, **self._kwargs))

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _lazily(module, name: str):
    def wrapper(*args, **kwargs):
        return Lazy(module, name, args, kwargs)
    wrapper.lazy = True
    return wrapper


def _timings_text(timings) -> str:
    return pprint.pformat(timings._timings)


def format_debug_lazily() -> None:
    """Make autobahn's WebSocket protocol module format its debug values lazily (once).

    In its protocol module and its Twisted adapter ``pformat``, ``hltype`` and ``hlval``
    only make debug-log values (at every connection, read and send), except
    ``str(Timings)``, which keeps returning text.
    """
    if getattr(_protocol.pformat, "lazy", False):
        return
    _protocol.pformat = _lazily(pprint, "pformat")
    _protocol.hltype = _lazily(util, "hltype")
    _protocol.hlval = _lazily(util, "hlval")
    _twisted_websocket.hltype = _lazily(util, "hltype")
    _twisted_websocket.hlval = _lazily(util, "hlval")
    _protocol.Timings.__str__ = _timings_text
