"""The panel's client of the device agent's local channel (HTTP on a Unix socket)."""

from __future__ import annotations

import json
from pathlib import Path

import treq
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.web.client import Agent, HTTPConnectionPool

TIMEOUT = 5.0


class AgentUnavailable(Exception):
    """The agent did not answer (not running, or the socket is missing)."""


class AgentRefused(Exception):
    """The agent refused the call; ``code`` and ``status`` say why."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class AgentChannelClient:
    """Lists approval requests and running sessions; reports answers and ends to the agent."""

    def __init__(self, reactor, socket: Path, secret: str):
        pool = HTTPConnectionPool(reactor, persistent=False)
        agent = Agent.usingEndpointFactory(reactor, _UnixEndpoints(reactor, socket), pool=pool)
        self._http = treq.client.HTTPClient(agent)
        self._headers = {"X-Panel-Secret": secret, "Content-Type": "application/json"}

    async def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            response = await self._http.request(
                method, "http://agent" + path, headers=self._headers, timeout=TIMEOUT,
                data=json.dumps(body).encode() if body is not None else None)
            answer = json.loads(await response.content())
        except Exception as e:
            raise AgentUnavailable(str(e) or type(e).__name__) from None
        if response.code >= 400:
            raise AgentRefused(response.code, answer.get("code", "error"),
                               answer.get("message", "refused"))
        return answer

    async def approvals(self) -> list[dict]:
        """The approval requests waiting for an operator."""
        return (await self._call("GET", "/v1/approvals"))["approvals"]

    async def sessions(self) -> list[dict]:
        """The sessions running on the device."""
        return (await self._call("GET", "/v1/sessions"))["sessions"]

    async def end(self, request_id: str, operator: str) -> None:
        """S291: the operator ends a running session."""
        await self._call("POST", f"/v1/sessions/{request_id}/end", {"operator": operator})

    async def describe_device(self, firmware_version: str, settings: list[dict] | None = None,
                              settings_version: int | None = None) -> None:
        """Tell the agent which firmware the device runs and which settings it has."""
        body = {"firmware_version": firmware_version}
        if settings is not None:
            body.update(settings=settings, settings_version=settings_version)
        await self._call("PUT", "/v1/device", body)

    async def jobs(self) -> list[dict]:
        """Maintenance jobs waiting for the device."""
        return (await self._call("GET", "/v1/jobs"))["jobs"]

    async def job_done(self, job_id: str, outcome: dict) -> None:
        """Report a job's outcome."""
        await self._call("POST", f"/v1/jobs/{job_id}", outcome)

    async def panel_login_failed(self, operator: str) -> None:
        """Tell the agent someone failed to log in at the panel (it tells the manager)."""
        await self._call("POST", "/v1/panel-logins/failed", {"operator": operator[:200]})

    async def job_progress(self, job_id: str, percent: int) -> None:
        """Report how far a firmware install is."""
        await self._call("POST", f"/v1/jobs/{job_id}/progress", {"percent": percent})

    async def download(self, path: str, write, limit: int) -> None:
        """Stream ``path`` (a job's image) into ``write``, at most ``limit`` bytes."""
        try:
            response = await self._http.request("GET", "http://agent" + path,
                                                headers=self._headers, timeout=TIMEOUT)
        except Exception as e:
            raise AgentUnavailable(str(e) or type(e).__name__) from None
        if response.code >= 400:
            answer = json.loads(await response.content() or b"{}")
            raise AgentRefused(response.code, answer.get("code", "error"),
                               answer.get("message", "refused"))
        received = 0

        def take(data: bytes) -> None:
            nonlocal received
            received += len(data)
            if received > limit:
                raise AgentRefused(200, "too-large", "the image is larger than announced")
            write(data)

        try:
            await treq.collect(response, take)
        except AgentRefused:
            raise
        except Exception as e:
            raise AgentUnavailable(str(e) or type(e).__name__) from None

    async def answer(self, request_id: str, approve: bool, operator: str) -> None:
        """Report the operator's YES or NO."""
        await self._call("POST", f"/v1/approvals/{request_id}",
                         {"answer": "yes" if approve else "no", "operator": operator})


class _UnixEndpoints:
    """Every URL goes to the agent's socket."""

    def __init__(self, reactor, socket: Path):
        self._reactor = reactor
        self._socket = str(socket)

    def endpointForURI(self, uri):
        return UNIXClientEndpoint(self._reactor, self._socket, timeout=TIMEOUT)
