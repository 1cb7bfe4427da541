"""Sending a message through the configured SMTP server, with ``twisted.mail``'s client.

STARTTLS is required (and the server's certificate checked against the
configured CA, or the system's) unless the server is on a loopback address
and the config says otherwise; AUTH is used when a username is configured.
Every attempt is bounded by the configured timeout.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from twisted.internet import ssl
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.mail.smtp import ESMTPSenderFactory

from remotecomm.tls import load_ca


class SmtpSender:
    """Sends messages to one SMTP server (``send(recipients, message)``)."""

    def __init__(self, reactor, *, host: str, port: int, from_address: str,
                 username: str | None, password_file: Path | None, require_starttls: bool,
                 ca_certificate: Path | None, timeout: float):
        self._reactor = reactor
        self._host = host
        self._port = port
        self.from_address = from_address
        self._username = username
        self._password_file = password_file
        self._require_starttls = require_starttls
        self._ca = ca_certificate
        self._timeout = timeout

    def check(self) -> None:
        """Read what sending will need (the password, the CA) now, so that a wrong path
        stops the server at start instead of failing every send; raises ``ValueError``."""
        try:
            self._password()
            self._tls()
        except OSError as e:
            raise ValueError(f"[mail] password_file: {e}") from None
        except Exception as e:
            raise ValueError(f"[mail] ca_certificate: {e}") from None

    def _password(self) -> bytes | None:
        if self._password_file is None:
            return None
        return self._password_file.read_bytes().strip()

    def _tls(self):
        trust = load_ca(self._ca) if self._ca is not None else ssl.platformTrust()
        return ssl.optionsForClientTLS(self._host, trustRoot=trust)

    def send(self, recipients: list[str], message: bytes) -> Deferred:
        """Deliver ``message`` to ``recipients``; fires when the server accepted it."""
        sent: Deferred = Deferred()
        username = self._username.encode("utf-8") if self._username else None
        factory = ESMTPSenderFactory(
            username, self._password(), self.from_address, recipients, BytesIO(message), sent,
            retries=0, timeout=self._timeout, contextFactory=self._tls(),
            requireAuthentication=username is not None,
            requireTransportSecurity=self._require_starttls, hostname=self._host)
        endpoint = HostnameEndpoint(self._reactor, self._host, self._port,
                                    timeout=self._timeout)
        endpoint.connect(factory).addErrback(
            lambda failure: None if sent.called else sent.errback(failure))
        # A whole delivery is bounded too, not only each of its steps.
        return sent.addTimeout(self._timeout * 4, self._reactor)
