"""The authenticated local channel between the agent and the device's panel.

HTTP with JSON on a Unix socket (mode 0600) in the agent's data folder,
and a shared secret in both configs sent as ``X-Panel-Secret``.  The agent
takes operators' answers from nowhere else.

``GET /v1/approvals``
    ``{"approvals": [{request_id, app_id, user_id, user_name, unit_id,
    unit_name, expires_at_us}]}`` — the requests waiting for the operator.
``POST /v1/approvals/{request_id}``
    ``{"answer": "yes" | "no", "operator": "<who pressed it>"}`` → ``200
    {"status": "sent"}``; ``404 unknown-request``, ``409 already-decided``,
    ``410 expired``; ``401 unauthenticated`` without the right secret.
``GET /v1/sessions``
    ``{"sessions": [{request_id, app_id, user_id, user_name, unit_id,
    unit_name, since_us}]}`` — the sessions running on the device.
``POST /v1/sessions/{request_id}/end``
    ``{"operator": "<who pressed it>"}`` → ``200 {"status": "ending"}``
    (S291); ``404 unknown-session``.
``PUT /v1/device``
    ``{"firmware_version": "4.2.1"}`` → ``200 {"status": "noted"}``: what
    the device runs, sent by the panel at start and whenever it changes; the
    agent says it in its hello and in every session report.
"""

from __future__ import annotations

import hmac

from twisted.web import server

from remotecomm.device.approvals import ApprovalError, Approvals
from remotecomm.identifiers import REQUEST_ID, is_valid
from remotecomm.json_http import ApiError, Route, Router, no_more_fields, read_json, take_str

SECRET_HEADER = b"x-panel-secret"
VERSION_TEXT = r"[0-9A-Za-z.+~_-]{1,32}"
_STATUS = {"unknown-request": 404, "already-decided": 409, "cancelled": 410, "expired": 410}


class PanelChannel:
    """The agent's side of the panel channel."""

    def __init__(self, approvals: Approvals, secret: str, links=None,
                 on_firmware_version=lambda version: None):
        self._approvals = approvals
        self._secret = secret.encode("utf-8")
        self._links = links  # the agent's RelayLinks: the sessions running on this device
        self._on_firmware_version = on_firmware_version

    def resource(self) -> Router:
        """The twisted.web resource to serve on the Unix socket."""
        return Router([
            Route("/v1/approvals", get=self.list_approvals),
            Route("/v1/approvals/{request_id}", post=self.answer),
            Route("/v1/sessions", get=self.list_sessions),
            Route("/v1/sessions/{request_id}/end", post=self.end_session),
            Route("/v1/device", put=self.describe_device),
        ])

    def _authenticate(self, request: server.Request) -> None:
        given = request.getHeader(SECRET_HEADER) or b""
        if not hmac.compare_digest(given, self._secret):
            raise ApiError(401, "unauthenticated", "the panel secret is missing or wrong")

    async def list_approvals(self, request: server.Request) -> tuple[int, dict]:
        """The approval requests waiting for the operator."""
        self._authenticate(request)
        return 200, {"approvals": [{
            "request_id": r.request_id, "app_id": r.app_id, "user_id": r.user_id,
            "user_name": r.user_name, "unit_id": r.unit_id, "unit_name": r.unit_name,
            "expires_at_us": r.expires_at_us} for r in self._approvals.pending()]}

    async def list_sessions(self, request: server.Request) -> tuple[int, dict]:
        """The sessions running on this device: who, from which unit, which app, since."""
        self._authenticate(request)
        running = []
        joined = getattr(self._links, "joined_us", {})
        for request_id, since_us in sorted(joined.items(), key=lambda item: item[1]):
            asked = self._approvals.describe(request_id)
            if asked is None:
                continue
            running.append({"request_id": request_id, "app_id": asked.app_id,
                            "user_id": asked.user_id, "user_name": asked.user_name,
                            "unit_id": asked.unit_id, "unit_name": asked.unit_name,
                            "since_us": since_us})
        return 200, {"sessions": running}

    async def end_session(self, request: server.Request, request_id: str) -> tuple[int, dict]:
        """S291: the operator at the panel ends a running session."""
        self._authenticate(request)
        body = read_json(request)
        operator = take_str(body, "operator", r"[^\x00-\x1f\x7f]{1,200}")
        no_more_fields(body)
        end = getattr(self._links, "end_by_operator", None)
        if not is_valid(REQUEST_ID, request_id) or end is None or not end(request_id, operator):
            raise ApiError(404, "unknown-session", "no such session running on this device")
        return 200, {"status": "ending"}

    async def describe_device(self, request: server.Request) -> tuple[int, dict]:
        """The panel says which firmware the device runs."""
        self._authenticate(request)
        body = read_json(request)
        version = take_str(body, "firmware_version", VERSION_TEXT)
        no_more_fields(body)
        self._on_firmware_version(version)
        return 200, {"status": "noted"}

    async def answer(self, request: server.Request, request_id: str) -> tuple[int, dict]:
        """The operator's YES or NO."""
        self._authenticate(request)
        body = read_json(request)
        answer = take_str(body, "answer", r"yes|no")
        operator = take_str(body, "operator", r"[^\x00-\x1f\x7f]{1,200}")
        no_more_fields(body)
        if not is_valid(REQUEST_ID, request_id):
            raise ApiError(404, "unknown-request", "no such approval request")
        try:
            self._approvals.decide(request_id, answer == "yes", operator)
        except ApprovalError as e:
            raise ApiError(_STATUS[e.code], e.code, e.message) from None
        return 200, {"status": "sent"}
