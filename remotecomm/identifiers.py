"""The shapes of identifiers that cross process boundaries, defined once.

Every ID that arrives from outside (REST body, header, CLI argument, config,
XMPP payload, relay handshake, relay ↔ manager message) is checked against
one of these patterns at that boundary, before it is used; each boundary
turns a mismatch into its own error (HTTP 400/404, an XMPP error stanza, a
WebSocket close code, a CLI usage error).
"""

import re

UNIT_ID = r"[a-z0-9][a-z0-9._-]{0,63}"
# A device ID is also the local part of the device's XMPP account.
DEVICE_ID = r"[a-z0-9][a-z0-9._-]{0,63}"
USER_ID = r"[a-z0-9][a-z0-9._@+-]{0,127}"
# The CLI generates terminal IDs (``t-`` + 32 hex digits); others may register longer ones.
TERMINAL_ID = r"[A-Za-z0-9][A-Za-z0-9_-]{15,63}"
APP_ID = r"[a-z0-9][a-z0-9._-]{0,63}"
# The manager's request ID (``secrets.token_urlsafe(16)``: 22 characters, never a leading
# ``-`` so that it is a plain command-line argument) names a session
# in manager URLs; the relay's session ID (32 characters, 192 bits) names it in the relay.
REQUEST_ID = r"[A-Za-z0-9_-]{16,64}"
SESSION_ID = r"[A-Za-z0-9_-]{22,64}"
# Tokens: 256 random bits in base64url; only their SHA-256 (hex) is stored or sent on.
TOKEN = r"[A-Za-z0-9_-]{43}"
TOKEN_HASH = r"[0-9a-f]{64}"
RELAY_NODE = r"[a-z0-9][a-z0-9._-]{0,63}"
# A device's panel operator (an account in the device's own config); the manager stores
# the name of the one who approved a session.
OPERATOR = r"[a-z0-9][a-z0-9._-]{0,63}"

# A maintenance job (issued by the manager; the device runs each at most once).
JOB_ID = r"job-[A-Za-z0-9_-]{22}"
# A firmware image uploaded to the manager.
IMAGE_ID = r"fw-[A-Za-z0-9_-]{22}"
# A version of a program (agent, firmware), as its maker names it.
VERSION_TEXT = r"[0-9A-Za-z.+~_-]{1,32}"
# A device setting's name, as the device declares it in its hello.
SETTING_NAME = r"[a-z][a-z0-9_]{0,39}"

# An e-mail address reports are sent to or from: local part @ domain, no spaces, quotes or
# angle brackets (nothing that could bend an SMTP command or a header).
MAIL_ADDRESS = r"[A-Za-z0-9.!#$%&*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*"

_compiled: dict[str, re.Pattern] = {}


def is_valid(pattern: str, value: object) -> bool:
    """Whether ``value`` is a string that matches ``pattern`` whole."""
    if not isinstance(value, str):
        return False
    matcher = _compiled.get(pattern)
    if matcher is None:
        matcher = _compiled[pattern] = re.compile(pattern)
    return matcher.fullmatch(value) is not None
