"""The shapes of identifiers that cross process boundaries.

Every ID that arrives from outside (REST body, header, CLI argument, config)
is checked against one of these patterns before it is used.
"""

import re

UNIT_ID = r"[a-z0-9][a-z0-9._-]{0,63}"
# A device ID is also the local part of the device's XMPP account.
DEVICE_ID = r"[a-z0-9][a-z0-9._-]{0,63}"
USER_ID = r"[a-z0-9][a-z0-9._@+-]{0,127}"
# The CLI generates terminal IDs (``t-`` + 32 hex digits); others may register longer ones.
TERMINAL_ID = r"[A-Za-z0-9][A-Za-z0-9_-]{15,63}"
APP_ID = r"[a-z0-9][a-z0-9._-]{0,63}"


def is_valid(pattern: str, value: object) -> bool:
    """Whether ``value`` is a string that matches ``pattern`` whole."""
    return isinstance(value, str) and re.fullmatch(pattern, value) is not None
