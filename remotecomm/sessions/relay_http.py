"""The relay ↔ manager API across processes: HTTPS routes on the manager, a client in the relay.

When ``twistd remotecomm --role relay`` runs apart from the manager, the
relay's calls of :class:`~remotecomm.sessions.relay_api.ManagerForRelay`
travel as JSON over HTTPS to the manager's ``/internal/v1/relay/…`` routes,
authenticated with a shared secret (``[relay] api_secret_file``, created by
``remotecomm admin init``; copy it to the relay host) in an
``Authorization: Bearer`` header over TLS that trusts only the deployment's
CA.  The arguments are the same plain values the in-process calls take.

======================================  ===============================================
``POST /internal/v1/relay/authenticate``  a joining side's token → its admission, or 403
                                          with the refusal's code
``POST /internal/v1/relay/refusals``      audit a refused admission
``POST /internal/v1/relay/logs``          file one session log (idempotent by its key)
``POST /internal/v1/relay/end-session``   the terminal ended: ask the device to end too
======================================  ===============================================
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path

import treq
from twisted.logger import Logger
from twisted.web import server
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

from remotecomm.relay.core import AdmissionRefused
from remotecomm.sessions.relay_api import ManagerForRelay
from remotecomm.tls import load_ca
from remotecomm.web.json_api import ApiError, Route, read_json

log = Logger()

PREFIX = "/internal/v1/relay"
CALL_TIMEOUT = 5.0
_SIDES = ("device", "terminal")
_KINDS = ("started", "ended")


class ManagerUnavailable(RuntimeError):
    """The manager did not take a call (down, slow, or answered with an error)."""


def read_api_secret(path: Path) -> str:
    """The shared secret of the relay ↔ manager API (raises ``OSError``, ``ValueError``)."""
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"{path}: the relay API secret must have at least 32 characters")
    return secret


def _str(body: dict, field: str, max_length: int = 200, optional: bool = False) -> str | None:
    value = body.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise ApiError(400, "invalid-field", f"the field {field!r} must be a string",
                       field=field)
    return value


def _int(body: dict, field: str) -> int:
    value = body.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ApiError(400, "invalid-field", f"the field {field!r} must be an integer",
                       field=field)
    return value


def _choice(body: dict, field: str, choices: tuple[str, ...]) -> str:
    value = body.get(field)
    if value not in choices:
        raise ApiError(400, "invalid-field", f"the field {field!r} must be one of {choices}",
                       field=field)
    return value


def validate_log(body: dict) -> dict:
    """A session log as the relay sends it, checked field by field."""
    log_body = {"key": _str(body, "key", 300), "kind": _choice(body, "kind", _KINDS),
                "session_id": _str(body, "session_id"), "request_id": _str(body, "request_id"),
                "side": _choice(body, "side", _SIDES), "party_id": _str(body, "party_id"),
                "at_us": _int(body, "at_us"), "relay_node": _str(body, "relay_node", 64)}
    if log_body["kind"] == "ended":
        if not isinstance(body.get("normal"), bool):
            raise ApiError(400, "invalid-field", "the field 'normal' must be true or false")
        log_body.update(normal=body["normal"], reason=_str(body, "reason", 64),
                        bytes_from_side=_int(body, "bytes_from_side"),
                        bytes_to_side=_int(body, "bytes_to_side"))
    return log_body


class RelayApiRoutes:
    """The manager's routes for relays in other processes."""

    def __init__(self, manager: ManagerForRelay, secret: str):
        self._manager = manager
        self._secret = secret.encode("ascii")

    def routes(self) -> list[Route]:
        return [Route(PREFIX + "/authenticate", post=self.authenticate),
                Route(PREFIX + "/refusals", post=self.refusal),
                Route(PREFIX + "/logs", post=self.file_log),
                Route(PREFIX + "/end-session", post=self.end_session)]

    def _check(self, request: server.Request) -> dict:
        header = request.getHeader(b"authorization") or b""
        scheme, _, value = header.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(value.strip(), self._secret):
            raise ApiError(401, "unauthenticated", "this API is for the deployment's relays")
        return read_json(request)

    async def authenticate(self, request: server.Request) -> tuple[int, dict]:
        body = self._check(request)
        call = {"session_id": _str(body, "session_id"), "side": _choice(body, "side", _SIDES),
                "token": _str(body, "token", 400),
                "source_address": _str(body, "source_address", 100, optional=True)}
        try:
            return 200, await self._manager.authenticate(call)
        except AdmissionRefused as e:
            raise ApiError(403, e.code, e.reason) from None

    async def refusal(self, request: server.Request) -> tuple[int, dict]:
        body = self._check(request)
        await self._manager.record_refusal({
            "session_id": _str(body, "session_id", optional=True),
            "side": _str(body, "side", 20, optional=True),
            "code": _str(body, "code", 64),
            "source_address": _str(body, "source_address", 100, optional=True)})
        return 200, {"recorded": True}

    async def file_log(self, request: server.Request) -> tuple[int, dict]:
        body = validate_log(self._check(request))
        try:
            await self._manager.file_log(body)
        except ValueError as e:
            raise ApiError(422, "unknown-session", str(e)) from None
        return 200, {"filed": body["key"]}

    async def end_session(self, request: server.Request) -> tuple[int, dict]:
        body = self._check(request)
        await self._manager.end_session({"request_id": _str(body, "request_id"),
                                         "session_id": _str(body, "session_id")})
        return 200, {"ok": True}


class ManagerClient:
    """The relay's side: the same calls as :class:`ManagerForRelay`, over HTTPS."""

    def __init__(self, reactor, manager_url: str, ca_certificate: Path | None, secret: str):
        self._reactor = reactor
        self._url = manager_url.rstrip("/") + PREFIX
        policy = BrowserLikePolicyForHTTPS(trustRoot=load_ca(ca_certificate)) \
            if ca_certificate is not None else BrowserLikePolicyForHTTPS()
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 4
        self._http = treq.client.HTTPClient(Agent(reactor, contextFactory=policy,
                                                  pool=self._pool))
        self._headers = {"Authorization": f"Bearer {secret}",
                         "Content-Type": "application/json"}

    async def _call(self, path: str, body: dict) -> tuple[int, dict]:
        try:
            response = await self._http.post(self._url + path, headers=self._headers,
                                             data=json.dumps(body).encode("utf-8"),
                                             timeout=CALL_TIMEOUT)
            content = await response.content()
        except Exception as e:
            raise ManagerUnavailable(f"the manager did not answer: {e!r}") from None
        try:
            answer = json.loads(content)
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        return response.code, answer

    def close(self):
        """Close the kept-alive connections (at shutdown)."""
        return self._pool.closeCachedConnections()

    async def authenticate(self, request: dict) -> dict:
        code, answer = await self._call("/authenticate", request)
        if code == 403:
            raise AdmissionRefused(str(answer.get("code", "refused")),
                                   str(answer.get("message", "refused by the manager")))
        if code != 200:
            raise ManagerUnavailable(f"the manager answered {code}: {answer.get('code')}")
        return {key: answer[key] for key in ("request_id", "party_id", "app_id",
                                             "pairing_deadline_us", "lifetime_deadline_us",
                                             "idle_timeout_us")}

    async def record_refusal(self, request: dict) -> None:
        code, answer = await self._call("/refusals", request)
        if code != 200:
            raise ManagerUnavailable(f"the manager answered {code}: {answer.get('code')}")

    async def file_log(self, body: dict) -> None:
        code, answer = await self._call("/logs", body)
        if code != 200:
            raise ManagerUnavailable(f"the manager did not file {body.get('key')}: {code} "
                                     f"{answer.get('code')}")

    async def end_session(self, request: dict) -> None:
        code, answer = await self._call("/end-session", request)
        if code != 200:
            raise ManagerUnavailable(f"the manager answered {code}: {answer.get('code')}")

