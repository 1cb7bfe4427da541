"""The relay ↔ manager seam over HTTPS: one table of calls, served and called the same way.

When relay and manager run apart, each call of
:class:`~remotecomm.relay.gateway.IManagerForRelay` and
:class:`~remotecomm.relay.gateway.IRelayForManager` is a ``POST`` of the
argument's JSON to a fixed path, authenticated with the deployment's
shared secret (``[relay] api_secret_file``, created by ``remotecomm admin
init``) in an ``Authorization: Bearer`` header, over TLS that trusts only
the deployment's CA.  The answer is the result's JSON (200) or an error:

======  ======================  ==============================================
status  code                    error on the caller's side
======  ======================  ==============================================
400     ``invalid-message``     :class:`~remotecomm.relay.gateway.MessageError`
401     ``unauthenticated``     :class:`~remotecomm.relay.gateway.PeerUnavailable`
403     the refusal's code      :class:`~remotecomm.relay.gateway.AdmissionRefused`
409     ``node-draining``       :class:`~remotecomm.relay.gateway.NodeDraining`
422     ``log-rejected``        :class:`~remotecomm.relay.gateway.LogRejected`
other   --                      :class:`~remotecomm.relay.gateway.PeerUnavailable`
======  ======================  ==============================================

:mod:`remotecomm.web.relay_api` (the manager's side) and
:mod:`remotecomm.relay.manager_api` (the relay's side) put the two tables
below to work; neither writes a route or a request by hand.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from pathlib import Path

import treq
from twisted.logger import Logger
from twisted.web import server
from twisted.web.client import Agent, HTTPConnectionPool

from remotecomm.json_http import ApiError, Route, read_json
from remotecomm.relay import gateway as gw
from remotecomm.tls import https_policy

log = Logger()

CALL_TIMEOUT = 5.0
MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class Call:
    """One call of the seam: its path, the interface method, what goes in and comes out."""

    path: str
    method: str
    message: type | None   # the argument's class (``None``: the call takes none)
    answer: type | None    # the result's class (``None``: the call returns nothing)


MANAGER_PREFIX = "/internal/v1/relay"   # the manager serves these; relays call them
MANAGER_CALLS = (
    Call("/authenticate", "authenticate", gw.JoinRequest, gw.Admission),
    Call("/refusals", "record_refusal", gw.Refusal, None),
    Call("/logs", "file_log", gw.SessionLog, None),
    Call("/end-session", "end_session", gw.EndRequest, None),
    Call("/heartbeat", "heartbeat", gw.Heartbeat, None),
)
RELAY_PREFIX = "/internal/v1/node"      # a relay node serves these; the manager calls them
RELAY_CALLS = (
    Call("/allocate", "allocate", gw.AllocationRequest, gw.Allocation),
    Call("/end-session", "end_session", gw.EndOrder, gw.EndResult),
    Call("/drain", "drain", None, gw.DrainReport),
    Call("/resume", "resume", None, gw.DrainReport),
)


def read_api_secret(path: Path) -> str:
    """The shared secret of the relay ↔ manager API (raises ``OSError``, ``ValueError``)."""
    secret = path.read_text().strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"{path}: the relay API secret must have at least "
                         f"{MIN_SECRET_LENGTH} characters")
    return secret


def _error_answer(error: gw.GatewayError) -> ApiError:
    if isinstance(error, gw.MessageError):
        return ApiError(400, "invalid-message", error.reason, field=error.field)
    if isinstance(error, gw.AdmissionRefused):
        return ApiError(403, error.code, error.reason)
    if isinstance(error, gw.NodeDraining):
        return ApiError(409, "node-draining", str(error))
    if isinstance(error, gw.LogRejected):
        return ApiError(422, "log-rejected", error.reason, key=error.key)
    return ApiError(503, "unavailable", str(error) or "try again")


def _error_of(status: int, answer: dict) -> gw.GatewayError:
    code = str(answer.get("code", ""))[:64]
    message = str(answer.get("message", ""))[:300] or f"the peer answered {status}"
    if status == 400:
        return gw.MessageError(answer.get("field") if isinstance(answer.get("field"), str)
                               else None, message)
    if status == 403:
        return gw.AdmissionRefused(code or "refused", message)
    if status == 409 and code == "node-draining":
        return gw.NodeDraining(message)
    if status == 422 and code == "log-rejected":
        return gw.LogRejected(str(answer.get("key", ""))[:160], message)
    return gw.PeerUnavailable(f"the peer answered {status} {code}: {message}")


def serve(prefix: str, calls: tuple[Call, ...], target, secret: str,
          on_refused=None) -> list[Route]:
    """Routes that answer each call in ``calls`` by calling ``target`` (an implementation
    of the matching interface), for callers that present ``secret``; ``on_refused(request)``
    hears of every caller that did not (the manager audits them)."""
    expected = secret.encode("ascii")

    def route(call: Call) -> Route:
        async def handle(request: server.Request) -> tuple[int, dict]:
            header = request.getHeader(b"authorization") or b""
            scheme, _, value = header.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(value.strip(), expected):
                if on_refused is not None:
                    await on_refused(request)
                raise ApiError(401, "unauthenticated", "this API is for the deployment's "
                                                       "own servers")
            body = read_json(request)
            method = getattr(target, call.method)
            try:
                if call.message is None:
                    if body:
                        raise gw.MessageError(sorted(body)[0], "this call takes no fields")
                    result = await method()
                else:
                    result = await method(call.message.from_json(body))
            except gw.GatewayError as e:
                raise _error_answer(e) from None
            return 200, result.to_json() if call.answer is not None else {"ok": True}
        return Route(prefix + call.path, post=handle)

    return [route(call) for call in calls]


class GatewayClient:
    """Calls the peer's routes; subclasses name the calls (one line each)."""

    def __init__(self, reactor, base_url: str, ca_certificate: Path | None, secret: str,
                 prefix: str, calls: tuple[Call, ...], timeout: float = CALL_TIMEOUT):
        self._url = base_url.rstrip("/") + prefix
        self._calls = {call.method: call for call in calls}
        self._timeout = timeout
        policy = https_policy(ca_certificate)
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 4
        self._http = treq.client.HTTPClient(Agent(reactor, contextFactory=policy,
                                                  pool=self._pool))
        self._headers = {"Authorization": f"Bearer {secret}",
                         "Content-Type": "application/json"}

    def close(self):
        """Close the kept-alive connections (at shutdown)."""
        return self._pool.closeCachedConnections()

    async def call(self, method: str, message=None):
        """Send ``message`` as the call named ``method``; its answer, decoded and checked."""
        call = self._calls[method]
        body = message.to_json() if message is not None else {}
        try:
            response = await self._http.post(self._url + call.path, headers=self._headers,
                                             data=json.dumps(body).encode("utf-8"),
                                             timeout=self._timeout)
            content = await response.content()
        except Exception as e:
            raise gw.PeerUnavailable(f"the peer did not answer: {e!r}") from None
        try:
            answer = json.loads(content)
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if response.code != 200:
            raise _error_of(response.code, answer)
        if call.answer is None:
            return None
        try:
            return call.answer.from_json(answer)
        except gw.MessageError as e:
            raise gw.PeerUnavailable(f"the peer's answer is malformed: {e.reason}") from None
