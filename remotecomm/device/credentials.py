"""The agent's XMPP password, and its rotation by the manager.

The config holds the password the device was registered with.  When the
manager rotates it (:class:`~remotecomm.sessions.messages.Credentials`,
versioned), the agent writes the new one to ``credentials.json`` in its data
folder (mode 0600, replaced atomically, fsynced) *before* it answers; only
then does the manager change the account's password and close the old
connection, and the agent logs in again with the new one.  The file also
keeps the password before it: should the manager fail between the agent's
answer and the change on the XMPP server, a refused login tries the other
password once, soon, instead of waiting out the usual back-off.  A version
older than the saved one is refused; the same version again is answered as
done (a repeat).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

from twisted.logger import Logger

from remotecomm.sessions.messages import Credentials, MessageRefused

log = Logger()


class AgentCredentials:
    """The password the agent logs in with, as configured or as last rotated."""

    def __init__(self, path: Path, configured_password: str):
        self._path = path
        self.version = 0
        self.password = configured_password
        self.previous: str | None = None
        self.on_change: Callable[[str], None] = lambda password: None
        try:
            saved = json.loads(path.read_text("utf-8"))
            self.version = int(saved["version"])
            self.password = str(saved["password"])
            self.previous = saved.get("previous")
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"device-agent: {path} is unreadable ({e}); remove it to use the "
                             f"configured password") from None

    def on_credentials(self, message: Credentials) -> None:
        """Save rotated credentials (before the manager is told so)."""
        if message.version < self.version or (message.version == self.version
                                              and message.password != self.password):
            raise MessageRefused("not-allowed", f"credentials version {message.version} is "
                                                f"not newer than {self.version}")
        if message.version == self.version:
            return  # a repeat of the rotation already saved
        record = {"version": message.version, "password": message.password,
                  "previous": self.password}
        temporary = self._path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(record, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self._path)
        self.version, self.previous, self.password = (message.version, self.password,
                                                      message.password)
        log.info("XMPP credentials version {version} saved", version=message.version)
        self.on_change(self.password)

    def other_password(self, tried: str) -> str | None:
        """After ``tried`` was refused: the other known password, if any."""
        if self.previous is None:
            return None
        return self.previous if tried == self.password else self.password
