"""What the simulated MFP is doing: status, counters, toner, address book, screen, firmware.

One :class:`DeviceState` is shared by the simulator's programs: the
``web-server`` app shows and changes it, the ``remote-panel`` app mirrors
its screen and presses its buttons.  Everything is bounded.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from remotecomm.sessions.messages import SettingError, SettingSpec

ERRORS = {
    "paper-jam": "Paper jam in tray 2. Open the right door and remove the paper.",
    "out-of-paper": "Tray 1 is out of paper.",
    "door-open": "The front door is open.",
    "toner-empty": "The black toner cartridge is empty.",
}
SCREENS = {"home": "Home", "copy": "Copy", "scan": "Scan", "fax": "Fax",
           "settings": "Settings"}
BUTTONS = ("home", "copy", "scan", "fax", "settings", "plus", "minus", "start", "stop",
           "reset")
MAX_CONTACTS = 500
NAME = re.compile(r"[^\x00-\x1f\x7f]{1,80}")
EMAIL = re.compile(r"[^@\s<>\"]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}")


# The settings the simulated device declares for maintenance jobs (its agent says them in
# its hello); SETTINGS_VERSION changes whenever this list does.
SETTINGS = (SettingSpec("sleep_minutes", "int", 1, 240),
            SettingSpec("default_copies", "int", 1, 99),
            SettingSpec("duplex_default", "bool"),
            SettingSpec("language", "choice", choices=("en", "de", "fr", "ja")),
            SettingSpec("admin_contact", "text", max_length=80))
SETTINGS_VERSION = 1
MAX_LOG_LINES = 200


class StateError(ValueError):
    """A change the device refuses; the message is for the person who asked."""


@dataclass(frozen=True)
class Contact:
    """One address book entry."""

    contact_id: int
    name: str
    email: str


@dataclass
class Firmware:
    """The installed firmware image."""

    version: str
    size: int = 0
    sha256: str = ""
    uploaded_at: str = ""


@dataclass
class DeviceState:
    """The simulated device's state."""

    name: str
    model: str
    serial: str = "SIM-0001"
    error: str | None = None
    screen: str = "home"
    copies: int = 1
    message: str = "Ready"
    toner: dict[str, int] = field(default_factory=lambda: {
        "cyan": 72, "magenta": 55, "yellow": 81, "black": 34})
    counters: dict[str, int] = field(default_factory=lambda: {
        "printed": 12840, "copied": 5210, "scanned": 3301, "faxed": 120})
    # Of the printed and copied pages, those in colour (the rest are mono).
    colour: dict[str, int] = field(default_factory=lambda: {"printed": 4120, "copied": 980})
    settings: dict[str, str] = field(default_factory=lambda: {
        "sleep_minutes": "15", "default_copies": "1", "duplex_default": "false",
        "language": "en", "admin_contact": "it@example.com"})
    log: deque = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))
    restarting: bool = False  # while true, the device's apps answer 503
    contacts: OrderedDict[int, Contact] = field(default_factory=OrderedDict)
    firmware: Firmware = field(default_factory=lambda: Firmware("4.2.1"))
    _next_contact: int = 1

    def __post_init__(self):
        if not self.contacts:
            self.add_contact("Front desk", "frontdesk@example.com")
            self.add_contact("Accounting", "accounting@example.com")

    @property
    def status(self) -> str:
        """``ready`` or the error code."""
        return self.error or "ready"

    @property
    def status_text(self) -> str:
        return ERRORS[self.error] if self.error else self.message

    def note(self, line: str) -> None:
        """One line in the device's own log (the newest 200 are kept)."""
        self.log.append(line[:160])

    def set_setting(self, name: str, value: str) -> str:
        """Change a setting (checked against its spec again); the previous value."""
        spec = next((s for s in SETTINGS if s.name == name), None)
        if spec is None:
            raise StateError(f"no setting {name!r}")
        try:
            spec.check(value)
        except SettingError as e:
            raise StateError(str(e)) from None
        previous, self.settings[name] = self.settings[name], value
        if name == "default_copies":
            self.copies = int(value)
        self.note(f"setting {name} changed from {previous} to {value}")
        return previous

    def begin_restart(self) -> None:
        """A restart: the apps go away until :meth:`end_restart`."""
        self.restarting = True
        self.note("restarting")

    def end_restart(self) -> None:
        self.restarting = False
        self.message = "Ready"
        self.note("restarted")

    def counter_report(self) -> dict:
        """Counters, mono and colour where the device tells them apart."""
        report = {}
        for name, total in self.counters.items():
            entry = {"total": total}
            if name in self.colour:
                entry.update(colour=self.colour[name], mono=total - self.colour[name])
            report[name] = entry
        return report

    def supplies_report(self) -> dict:
        """Toner levels (percent), paper, and the error state."""
        return {"toner": dict(self.toner),
                "paper": {"tray1": "empty" if self.error == "out-of-paper" else "ok"},
                "status": self.status, "error": ERRORS.get(self.error or "")}

    def set_error(self, code: str | None) -> None:
        """Put the device into an error state (``None`` clears it)."""
        if code is not None and code not in ERRORS:
            raise StateError(f"unknown error {code!r}")
        self.error = code
        self.message = "Ready"
        self.note(f"error {code}" if code else "error cleared")

    def add_contact(self, name: str, email: str) -> Contact:
        name, email = name.strip(), email.strip()
        if not NAME.fullmatch(name):
            raise StateError("give a name of 1 to 80 characters")
        if not EMAIL.fullmatch(email):
            raise StateError("give a valid e-mail address")
        if len(self.contacts) >= MAX_CONTACTS:
            raise StateError(f"the address book is full ({MAX_CONTACTS} entries)")
        contact = Contact(self._next_contact, name, email)
        self._next_contact += 1
        self.contacts[contact.contact_id] = contact
        return contact

    def delete_contact(self, contact_id: int) -> None:
        if self.contacts.pop(contact_id, None) is None:
            raise StateError("no such entry")

    def press(self, button: str) -> None:
        """A button on the panel (or its remote mirror)."""
        if button not in BUTTONS:
            raise StateError(f"unknown button {button!r}")
        if button in SCREENS:
            self.screen = button
            self.message = "Ready" if not self.error else self.message
        elif button == "plus":
            self.copies = min(99, self.copies + 1)
        elif button == "minus":
            self.copies = max(1, self.copies - 1)
        elif button == "reset":
            self.set_error(None)
            self.copies = 1
        elif button == "stop":
            self.message = "Job cancelled"
        elif button == "start":
            self._start()

    def _start(self) -> None:
        if self.error:
            self.message = "Cannot start: clear the error first"
            return
        if self.screen == "copy":
            self.counters["copied"] += self.copies
            self.counters["printed"] += self.copies
            self.note(f"copied {self.copies} page(s)")
            self.toner["black"] = max(0, self.toner["black"] - 1)
            self.message = f"Copied {self.copies} page{'s' if self.copies > 1 else ''}"
            if self.toner["black"] == 0:
                self.error = "toner-empty"
        elif self.screen == "scan":
            self.counters["scanned"] += 1
            self.message = "Scanned 1 page to the address book's first entry"
        elif self.screen == "fax":
            self.counters["faxed"] += 1
            self.message = "Fax sent"
        else:
            self.message = "Choose Copy, Scan or Fax first"

    def summary(self) -> dict:
        """The state as JSON-ready values."""
        return {
            "name": self.name, "model": self.model, "serial": self.serial,
            "status": self.status, "status_text": self.status_text, "screen": self.screen,
            "copies": self.copies, "toner": dict(self.toner), "counters": dict(self.counters),
            "firmware": {"version": self.firmware.version, "size": self.firmware.size,
                         "sha256": self.firmware.sha256,
                         "uploaded_at": self.firmware.uploaded_at},
        }
