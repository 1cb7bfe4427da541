"""wokkel 18.0.0 on Twisted 26: the names it imports that Twisted has removed or deprecated.

wokkel's ``data_form``, ``disco``, ``ping`` and ``pubsub`` import ``_PY3``
and ``StringType`` from ``twisted.python.compat`` (both gone), and every
module imports deprecated Python 2 aliases (``unicode``, ``iteritems`` …)
that warn on import.  Import wokkel only through this module: it restores
the missing names and keeps wokkel's own deprecation warnings out of the
log, so that ``python -W error`` still imports what we use.
"""

import warnings

import twisted.python.compat as _compat

with warnings.catch_warnings():
    # Only the Python 2 aliases wokkel reaches for; anything else still warns.
    warnings.filterwarnings("ignore", category=DeprecationWarning,
                            message=r"twisted\.python\.compat\.\w+ was deprecated")
    if not hasattr(_compat, "_PY3"):
        _compat._PY3 = True
    if not hasattr(_compat, "StringType"):
        _compat.StringType = str
    from wokkel import generic, subprotocols, xmppim  # noqa: E402

__all__ = ["generic", "subprotocols", "xmppim"]
