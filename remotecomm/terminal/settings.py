"""The terminal's own files: settings (server URL, CA) and state (terminal ID, API token).

Both live in ``$REMOTECOMM_HOME`` (default ``~/.config/remotecomm``):
``terminal.toml`` holds settings a person writes; ``state.json`` is written
by the CLI (mode 0600, replaced atomically) and holds the terminal ID,
generated once at the first login, and the current API token.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from remotecomm.command_line import EXIT_USAGE, CliError
from remotecomm.config import ConfigError, ConfigFile
from remotecomm.identifiers import TERMINAL_ID, UNIT_ID, is_valid

SERVER_URL_PATTERN = r"https?://[^\s/?#]+/?"


def terminal_home() -> Path:
    """Where the terminal's settings and state live."""
    if "REMOTECOMM_HOME" in os.environ:
        return Path(os.environ["REMOTECOMM_HOME"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "remotecomm"


@dataclass(frozen=True)
class TerminalSettings:
    """The server to talk to and the CA to trust (``None``: the system's trust store)."""

    server_url: str | None
    ca_certificate: Path | None


def load_settings(home: Path, server: str | None, ca: str | None) -> TerminalSettings:
    """Settings from the command line, else the environment, else ``terminal.toml``."""
    path = home / "terminal.toml"
    file_server, file_ca = None, None
    if path.exists():
        try:
            config = ConfigFile.load(path)
            section = config.section("terminal")
            file_server = section.get_str("server_url", pattern=SERVER_URL_PATTERN)
            file_ca = section.get_path("ca_certificate")
            section.finish()
            config.finish()
        except ConfigError as e:
            raise CliError(str(e), EXIT_USAGE) from None
    server_url = server or os.environ.get("REMOTECOMM_SERVER") or file_server
    ca_value = ca or os.environ.get("REMOTECOMM_CA")
    ca_path = Path(ca_value).expanduser().absolute() if ca_value else file_ca
    if server_url is not None:
        if not re.fullmatch(SERVER_URL_PATTERN, server_url):
            raise CliError(f"server URL {server_url!r} must look like https://host:port",
                           EXIT_USAGE)
        server_url = server_url.rstrip("/")
    return TerminalSettings(server_url=server_url, ca_certificate=ca_path)


@dataclass
class TerminalState:
    """What the CLI remembers between runs."""

    terminal_id: str
    server_url: str | None = None
    user_id: str | None = None
    token: str | None = None
    expires_at_us: int | None = None
    unit_id: str | None = None          # the unit commands act in (None: the only one)
    units: list[str] | None = None      # the units the user belongs to, as of the login
    provider_admin: bool = False


def new_terminal_id() -> str:
    """A fresh terminal ID: ``t-`` and 128 random bits in hex."""
    return "t-" + secrets.token_hex(16)


def load_state(home: Path) -> TerminalState:
    """The saved state, or a fresh one with a new terminal ID (not yet saved)."""
    path = home / "state.json"
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return TerminalState(terminal_id=new_terminal_id())
    except (OSError, ValueError) as e:
        raise CliError(f"{path}: unreadable ({e}); remove it and log in again", EXIT_USAGE) from None
    if not isinstance(data, dict) or not is_valid(TERMINAL_ID, data.get("terminal_id")):
        raise CliError(f"{path}: no valid terminal ID; remove it and log in again", EXIT_USAGE)
    return TerminalState(
        terminal_id=data["terminal_id"],
        server_url=data.get("server_url") if isinstance(data.get("server_url"), str) else None,
        user_id=data.get("user_id") if isinstance(data.get("user_id"), str) else None,
        token=data.get("token") if isinstance(data.get("token"), str) else None,
        expires_at_us=data.get("expires_at_us") if isinstance(data.get("expires_at_us"), int)
        else None,
        unit_id=data.get("unit_id") if is_valid(UNIT_ID, data.get("unit_id")) else None,
        units=[u for u in data.get("units") or [] if is_valid(UNIT_ID, u)]
        if isinstance(data.get("units"), list) else None,
        provider_admin=data.get("provider_admin") is True,
    )


def save_state(home: Path, state: TerminalState) -> None:
    """Write the state file atomically, readable by its owner only."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / "state.json"
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(state.__dict__, f, indent=2)
        f.write("\n")
    os.replace(temporary, path)
