"""Driving the simulated MFP's panel over HTTP, as an operator would with a browser."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

from remotecomm.testing.http import http_client
from remotecomm.testing.processes import sleep

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_REQUEST = re.compile(r'data-request-id="([^"]+)"')


class PanelUser:
    """One browser at the panel: keeps its cookie, reads CSRF tokens from the pages."""

    def __init__(self, reactor, url: str, http=None):
        self._reactor = reactor
        self.url = url.rstrip("/")
        self._http = http if http is not None else http_client(reactor)
        self.cookie: str | None = None

    def _headers(self) -> dict:
        return {"Cookie": f"panel_session={self.cookie}"} if self.cookie else {}

    def _remember(self, response) -> None:
        for header in response.headers.getRawHeaders("set-cookie", []):
            jar = SimpleCookie(header)
            if "panel_session" in jar:
                self.cookie = jar["panel_session"].value

    async def get(self) -> tuple[int, str]:
        """GET the panel page; its status and HTML."""
        response = await self._http.get(self.url + "/", headers=self._headers(), timeout=5)
        self._remember(response)
        return response.code, (await response.content()).decode("utf-8")

    async def post(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        """POST a form; its status and HTML (redirects are not followed)."""
        response = await self._http.post(self.url + path, data=fields, headers=self._headers(),
                                         timeout=10, allow_redirects=False)
        self._remember(response)
        return response.code, (await response.content()).decode("utf-8")

    async def csrf(self) -> str:
        """The CSRF token of the current page."""
        _, page = await self.get()
        return _CSRF.search(page).group(1)

    async def login(self, operator: str, password: str) -> int:
        """Log in at the panel; the status (303 on success)."""
        code, _ = await self.post("/login", {"operator": operator, "password": password,
                                             "csrf": await self.csrf()})
        return code

    async def wait_for_request(self, timeout: float = 10) -> str:
        """Wait until an approval request shows on the panel; its request ID."""
        start = self._reactor.seconds()
        while self._reactor.seconds() - start < timeout:
            _, page = await self.get()
            match = _REQUEST.search(page)
            if match:
                return match.group(1)
            await sleep(self._reactor, 0.1)
        raise AssertionError(f"no approval request on the panel within {timeout} s")

    async def answer(self, request_id: str, answer: str, csrf: str | None = None) -> int:
        """Press YES or NO; the status (303 when the panel took it)."""
        code, _ = await self.post("/decide", {"request_id": request_id, "answer": answer,
                                              "csrf": csrf if csrf is not None
                                              else await self.csrf()})
        return code
