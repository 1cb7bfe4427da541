"""The guard on autobahn's native helpers (NVX).

Without them WebSocket masking and UTF-8 validation run in pure Python and
the relay is about 50 times slower (``../shared/notes/performance.md``), so
the server refuses to start rather than run crippled.
"""


class NativeHelpersMissing(Exception):
    """autobahn runs without its compiled helpers."""


def check_native_helpers() -> None:
    """Raise :class:`NativeHelpersMissing` unless autobahn uses its NVX helpers."""
    from autobahn import websocket

    if not getattr(websocket, "USES_NVX", False):
        reason = ("they are turned off (AUTOBAHN_USE_NVX is set to a false value)"
                  if getattr(websocket, "HAS_NVX", False) else
                  "this autobahn build has none (reinstall autobahn from its wheel)")
        raise NativeHelpersMissing(
            "autobahn's native helpers (NVX) are not active: " + reason +
            ". The relay would run about 50x slower; refusing to start.")
