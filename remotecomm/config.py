"""Reading TOML configuration files strictly.

Every config file is validated as a whole before anything starts: unknown
sections and keys are errors (a typo must not silently fall back to a
default), every value is type-checked, and each error names the file, the
section and the key.  The product's own config classes (server, device
agent, terminal) are built from :class:`Section` readers.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.testing import MemoryReactor

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class ConfigError(Exception):
    """A config file is missing, unreadable or invalid; the message says where."""


class Section:
    """Typed access to one ``[section]`` of a config file.

    Each ``get_*`` call consumes a key; :meth:`finish` then rejects any key
    that nobody asked for.
    """

    def __init__(self, source: str, name: str, values: dict[str, Any], base_dir: Path):
        self.source = source
        self.name = name
        self._values = dict(values)
        self._base_dir = base_dir

    def _where(self, key: str) -> str:
        return f"{self.source}: [{self.name}] {key}"

    def _take(self, key: str, default: Any, required: bool) -> Any:
        if key in self._values:
            return self._values.pop(key)
        if required:
            raise ConfigError(f"{self._where(key)}: missing (required)")
        return default

    def get_str(self, key: str, default: str | None = None, *, required: bool = False,
                pattern: str | None = None) -> str | None:
        """A string value; ``pattern`` (a regex) must match it whole."""
        value = self._take(key, default, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{self._where(key)}: expected a string, got {type(value).__name__}")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise ConfigError(f"{self._where(key)}: {value!r} is not valid here")
        return value

    def get_str_list(self, key: str, default: list[str]) -> list[str]:
        """A non-empty list of non-empty strings."""
        value = self._take(key, default, False)
        if not isinstance(value, list) or not value or not all(
                isinstance(v, str) and v.strip() for v in value):
            raise ConfigError(f"{self._where(key)}: expected a non-empty list of strings")
        return value

    def get_bool(self, key: str, default: bool) -> bool:
        """A true/false value."""
        value = self._take(key, default, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{self._where(key)}: expected true or false")
        return value

    def get_int(self, key: str, default: int, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
        """An integer within ``[minimum, maximum]``."""
        value = self._take(key, default, False)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self._where(key)}: expected an integer")
        if minimum is not None and value < minimum:
            raise ConfigError(f"{self._where(key)}: must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{self._where(key)}: must be at most {maximum}")
        return value

    def get_choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        """One of a fixed set of strings."""
        value = self.get_str(key, default)
        if value not in choices:
            raise ConfigError(f"{self._where(key)}: {value!r} is not one of {', '.join(choices)}")
        return value

    def get_duration(self, key: str, default: float, *, minimum: float = 0,
                     maximum: float | None = None) -> float:
        """A duration in seconds: a number, or a string such as ``"90s"``, ``"15m"``, ``"12h"``."""
        value = self._take(key, default, False)
        if isinstance(value, bool):
            raise ConfigError(f"{self._where(key)}: expected a duration such as \"30s\" or \"12h\"")
        if isinstance(value, (int, float)):
            seconds = float(value)
        elif isinstance(value, str) and (match := _DURATION.match(value)):
            seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        else:
            raise ConfigError(f"{self._where(key)}: expected a duration such as \"30s\" or \"12h\"")
        if seconds < minimum:
            raise ConfigError(f"{self._where(key)}: must be at least {minimum:g} s")
        if maximum is not None and seconds > maximum:
            raise ConfigError(f"{self._where(key)}: must be at most {maximum:g} s")
        return seconds

    def get_path(self, key: str, default: Path | None = None, *, required: bool = False,
                 base: Path | None = None) -> Path | None:
        """A filesystem path; relative paths are taken from ``base`` (default: the file's folder)."""
        value = self.get_str(key, None, required=required)
        if value is None:
            return default
        if not value:
            raise ConfigError(f"{self._where(key)}: empty path")
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = (base or self._base_dir) / path
        return Path(os.path.normpath(path))

    def get_server_endpoint(self, key: str, default: str) -> str:
        """A Twisted server endpoint string (``tcp:8443:interface=127.0.0.1``), syntax-checked."""
        value = self.get_str(key, default)
        if not value.startswith(("tcp:", "tcp6:", "unix:")):
            raise ConfigError(f"{self._where(key)}: {value!r} must be a tcp:, tcp6: or unix: endpoint")
        try:
            serverFromString(MemoryReactor(), value)
        except Exception as e:  # the endpoint parser raises assorted errors
            raise ConfigError(f"{self._where(key)}: {value!r} is not a valid endpoint ({e})") from None
        return value

    def keys(self) -> list[str]:
        """The keys not read yet (for sections whose keys are names, such as ``[apps]``)."""
        return list(self._values)

    def finish(self) -> None:
        """Reject the keys nobody read."""
        if self._values:
            unknown = ", ".join(sorted(self._values))
            raise ConfigError(f"{self.source}: [{self.name}] unknown key(s): {unknown}")


class ConfigFile:
    """A parsed TOML config file, handed out section by section."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self._data = dict(data)

    @classmethod
    def load(cls, path: str | Path) -> "ConfigFile":
        """Read and parse ``path``; any problem becomes a :class:`ConfigError`."""
        path = Path(path).expanduser().absolute()
        try:
            with path.open("rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        return cls(path, data)

    def section(self, name: str) -> Section:
        """The ``[name]`` section (empty when absent)."""
        values = self._data.pop(name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"{self.path}: {name} must be a [section]")
        return Section(str(self.path), name, values, self.path.parent)

    def finish(self) -> None:
        """Reject sections nobody read."""
        if self._data:
            raise ConfigError(f"{self.path}: unknown section(s): {', '.join(sorted(self._data))}")


def endpoint_interface(endpoint: str) -> str | None:
    """The ``interface=`` of a tcp endpoint string, unescaped (``None`` when absent)."""
    match = re.search(r"(?:^|:)interface=((?:\\:|[^:])+)", endpoint)
    return match.group(1).replace("\\:", ":") if match else None


def is_loopback_endpoint(endpoint: str) -> bool:
    """Whether a tcp endpoint string binds only a loopback address."""
    if endpoint.startswith("unix:"):
        return True
    interface = endpoint_interface(endpoint)
    return interface is not None and (interface.startswith("127.") or interface == "::1")



def config_options(loader, key: str, sample: str) -> type:
    """A twistd ``Options`` class with a required ``--config``, loaded by ``loader``.

    The loaded config lands in ``options[key]``; a config error is a usage
    error with the file, section and key in its message.
    """
    from twisted.python import usage

    class Options(usage.Options):
        optParameters = [["config", "c", None, f"The config file (see {sample})."]]

        def postOptions(self) -> None:
            if not self["config"]:
                raise usage.UsageError(f"--config is required (see {sample})")
            try:
                self[key] = loader(self["config"])
            except ConfigError as e:
                raise usage.UsageError(str(e)) from None

    return Options
