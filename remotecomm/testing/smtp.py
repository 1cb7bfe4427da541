"""A real SMTP server for end-to-end tests: aiosmtpd (not our code) in a child process.

``python -m remotecomm.testing.smtp FOLDER PORT USER PASSWORD`` serves SMTP on
127.0.0.1:PORT with STARTTLS required before anything else (certificate
``FOLDER/smtp.pem``, issued by ``FOLDER/ca.pem``) and AUTH required, and
writes each accepted message to ``FOLDER/mail/N.eml`` (envelope in
``N.json``).  :class:`SmtpServer` prepares the certificates, starts it and
reads what it received.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import sys
from pathlib import Path

from remotecomm.testing.processes import ChildProcess, sleep
from remotecomm.tls import create_ca, issue_certificate


class SmtpServer:
    """aiosmtpd with STARTTLS and AUTH on 127.0.0.1, as a child process of the test."""

    def __init__(self, reactor, folder: Path, port: int, user: str = "reports",
                 password: str = "smtp secret"):
        self.reactor = reactor
        self.folder = folder.absolute()
        self.port = port
        self.user = user
        self.password = password
        self.ca = folder / "ca.pem"
        self.process: ChildProcess | None = None

    async def start(self) -> None:
        """Certificates, then the server; returns once it listens."""
        self.folder.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        create_ca(self.ca, self.folder / "ca.key", "SMTP test CA", now)
        issue_certificate(self.ca, self.folder / "ca.key", self.folder / "smtp.pem",
                          self.folder / "smtp.key", ["127.0.0.1"], now)
        self.process = ChildProcess(
            self.reactor, [sys.executable, "-m", "remotecomm.testing.smtp", str(self.folder),
                           str(self.port), self.user, self.password], cwd=self.folder)
        await self.process.wait_for_output("smtp ready", timeout=10)

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop()

    def messages(self) -> list[tuple[dict, bytes]]:
        """``(envelope, message bytes)`` of each message received, in order."""
        mail = self.folder / "mail"
        found = sorted(mail.glob("*.eml"), key=lambda p: int(p.stem)) if mail.exists() else []
        return [(json.loads(p.with_suffix(".json").read_text()), p.read_bytes()) for p in found]

    async def wait_for_messages(self, count: int, timeout: float = 20) -> list:
        """The messages, once there are ``count`` of them."""
        for _ in range(int(timeout * 10)):
            if len(self.messages()) >= count:
                return self.messages()
            await sleep(self.reactor, 0.1)
        raise AssertionError(f"{count} message(s) not received within {timeout} s: "
                             f"{len(self.messages())}; server output: "
                             f"{self.process.output if self.process else ''}")


def _serve(folder: Path, port: int, user: str, password: str) -> None:
    from aiosmtpd.smtp import SMTP, AuthResult

    mail = folder / "mail"
    mail.mkdir(exist_ok=True)

    class Keep:
        async def handle_DATA(self, server, session, envelope):
            number = len(list(mail.glob("*.eml"))) + 1
            (mail / f"{number}.json").write_text(json.dumps(
                {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                 "tls": session.ssl is not None,
                 "authenticated": bool(session.authenticated)}))
            (mail / f"{number}.eml").write_bytes(envelope.original_content)
            return "250 OK"

    def check(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "smtp.pem", folder / "smtp.key")

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Keep(), tls_context=context, require_starttls=True,
                         auth_required=True, authenticator=check, hostname="smtp.test"),
            "127.0.0.1", port)
        print("smtp ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


if __name__ == "__main__":
    _serve(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
