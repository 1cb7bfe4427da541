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
``POST /v1/panel-logins/failed``
    ``{"operator": "<the name typed>"}`` → ``200 {"status": "sent"}`` (or
    ``"dropped"`` past 10 a minute): a failed login at the panel, which the
    agent reports to the manager (audited under the device's unit).
``PUT /v1/device``
    ``{"firmware_version": "4.2.1", "settings": [{name, kind, minimum,
    maximum, choices, max_length}], "settings_version": 1}`` → ``200
    {"status": "noted"}``: what the device runs and which settings
    maintenance jobs may read and set (``settings`` optional), sent by the
    panel at start and whenever it changes; the agent says it in its hello.
``GET /v1/jobs``
    ``{"jobs": [{job_id, action, key, value, deadline_us}]}`` — maintenance
    jobs waiting for the device; a ``firmware`` job (offered once the agent
    downloaded and verified its image) adds ``image: {path, sha256, size,
    version}``.
``GET /v1/jobs/{job_id}/image``
    a firmware job's image (``Range`` works); ``404 unknown-job``.
``POST /v1/jobs/{job_id}/progress``
    ``{"percent": 0..100}`` → ``200 {"status": "noted"}``: how far the
    install is (the agent tells the manager, at most once a second).
``POST /v1/jobs/{job_id}``
    ``{"outcome": "done", "result": …}`` or ``{"outcome": "failed",
    "error_code": …, "error": …}`` → ``200 {"status": "sent"}``; ``404
    unknown-job``, ``400 invalid-result``.  A ``restart`` or ``firmware``
    job reported done restarts the device's links.
"""

from __future__ import annotations

import hmac

from twisted.web import server

from remotecomm.device.approvals import ApprovalError, Approvals
from remotecomm.device.jobs import AgentJobs, JobError
from remotecomm.http_files import serve_file
from remotecomm.identifiers import JOB_ID, REQUEST_ID, VERSION_TEXT, is_valid
from remotecomm.json_http import (ANSWERED, ApiError, Route, Router, no_more_fields, read_json,
                                  take_str)
from remotecomm.sessions.messages import MAX_SETTINGS, SettingError, SettingSpec

SECRET_HEADER = b"x-panel-secret"


def _job_json(job) -> dict:
    """A waiting job as the panel reads it (a firmware job: its image, to read here)."""
    answer = {"job_id": job.job_id, "action": job.action, "key": job.key,
              "value": job.value, "deadline_us": job.deadline_us}
    if job.action == "firmware":
        answer["image"] = {"path": f"/v1/jobs/{job.job_id}/image", "sha256": job.image_sha256,
                           "size": job.image_size, "version": job.image_version}
    return answer
_SPEC_FIELDS = {"name", "kind", "minimum", "maximum", "choices", "max_length"}
_STATUS = {"unknown-request": 404, "already-decided": 409, "cancelled": 410, "expired": 410}


class PanelChannel:
    """The agent's side of the panel channel."""

    def __init__(self, approvals: Approvals, secret: str, links=None,
                 on_description=lambda firmware_version, settings, settings_version: None,
                 jobs: AgentJobs | None = None,
                 on_login_failed=lambda operator: True):
        self._approvals = approvals
        self._on_login_failed = on_login_failed  # tell the manager; False: over the bound
        self._secret = secret.encode("utf-8")
        self._links = links  # the agent's RelayLinks: the sessions running on this device
        self._on_description = on_description
        self._jobs = jobs

    def resource(self) -> Router:
        """The twisted.web resource to serve on the Unix socket."""
        return Router([
            Route("/v1/approvals", get=self.list_approvals),
            Route("/v1/approvals/{request_id}", post=self.answer),
            Route("/v1/sessions", get=self.list_sessions),
            Route("/v1/sessions/{request_id}/end", post=self.end_session),
            Route("/v1/device", put=self.describe_device),
            Route("/v1/panel-logins/failed", post=self.login_failed),
            Route("/v1/jobs", get=self.list_jobs),
            Route("/v1/jobs/{job_id}", post=self.job_done),
            Route("/v1/jobs/{job_id}/image", get=self.job_image),
            Route("/v1/jobs/{job_id}/progress", post=self.job_progress),
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
        """The panel says which firmware the device runs and which settings it has."""
        self._authenticate(request)
        body = read_json(request)
        version = take_str(body, "firmware_version", VERSION_TEXT)
        raw_settings = body.pop("settings", [])
        settings_version = body.pop("settings_version", None)
        no_more_fields(body)
        if not isinstance(raw_settings, list) or len(raw_settings) > MAX_SETTINGS:
            raise ApiError(400, "invalid-field", f"settings: a list of at most {MAX_SETTINGS}",
                           field="settings")
        if settings_version is not None and (not isinstance(settings_version, int) or
                                             isinstance(settings_version, bool) or
                                             not 0 <= settings_version < 10**6):
            raise ApiError(400, "invalid-field", "settings_version: a number",
                           field="settings_version")
        settings = []
        for raw in raw_settings:
            try:
                if not isinstance(raw, dict) or set(raw) - _SPEC_FIELDS:
                    raise SettingError("each setting is an object of " +
                                       ", ".join(sorted(_SPEC_FIELDS)))
                spec = SettingSpec(raw.get("name"), raw.get("kind"), raw.get("minimum"),
                                   raw.get("maximum"), tuple(raw.get("choices") or ()),
                                   raw.get("max_length")).validate()
            except (SettingError, TypeError) as e:
                raise ApiError(400, "invalid-field", f"settings: {e}", field="settings") \
                    from None
            if any(s.name == spec.name for s in settings):
                raise ApiError(400, "invalid-field", f"settings: {spec.name} twice",
                               field="settings")
            settings.append(spec)
        self._on_description(version, tuple(settings), settings_version)
        return 200, {"status": "noted"}

    async def login_failed(self, request: server.Request) -> tuple[int, dict]:
        """Someone failed to log in at the panel: the manager audits it."""
        self._authenticate(request)
        body = read_json(request)
        operator = take_str(body, "operator", r"[^\x00-\x1f\x7f]{1,200}", max_length=200)
        no_more_fields(body)
        if not self._on_login_failed(operator):
            return 200, {"status": "dropped"}  # more than the bound this minute: logged only
        return 200, {"status": "sent"}

    async def list_jobs(self, request: server.Request) -> tuple[int, dict]:
        """Maintenance jobs waiting for the device."""
        self._authenticate(request)
        waiting = self._jobs.waiting() if self._jobs is not None else []
        return 200, {"jobs": [_job_json(job) for job in waiting]}

    async def job_image(self, request: server.Request, job_id: str):
        """A firmware job's verified image (``Range`` works)."""
        self._authenticate(request)
        if self._jobs is None or not is_valid(JOB_ID, job_id):
            raise ApiError(404, "unknown-job", "no such firmware job is waiting")
        try:
            path, job = self._jobs.image_of(job_id)
        except JobError as e:
            raise ApiError(404, e.code, e.message) from None
        serve_file(request, path, job.image_size)
        return 200, ANSWERED

    async def job_progress(self, request: server.Request, job_id: str):
        """How far the device is installing a firmware job's image."""
        self._authenticate(request)
        body = read_json(request)
        percent = body.pop("percent", None)
        no_more_fields(body)
        if not isinstance(percent, int) or isinstance(percent, bool) or not 0 <= percent <= 100:
            raise ApiError(400, "invalid-field", "percent: a whole number from 0 to 100",
                           field="percent")
        if self._jobs is None or not is_valid(JOB_ID, job_id):
            raise ApiError(404, "unknown-job", "no such firmware job is installing")
        try:
            self._jobs.install_progress(job_id, percent)
        except JobError as e:
            raise ApiError(404, e.code, e.message) from None
        return 200, {"status": "noted"}

    async def job_done(self, request: server.Request, job_id: str) -> tuple[int, dict]:
        """The device ran a job: its outcome."""
        self._authenticate(request)
        body = read_json(request)
        outcome = take_str(body, "outcome", r"done|failed")
        result = body.pop("result", None)
        error_code = body.pop("error_code", None)
        error = body.pop("error", None)
        no_more_fields(body)
        if self._jobs is None or not is_valid(JOB_ID, job_id):
            raise ApiError(404, "unknown-job", "no such job is waiting")
        if error is not None and (not isinstance(error, str) or not error.isprintable()):
            raise ApiError(400, "invalid-result", "error: printable text")
        try:
            self._jobs.report(job_id, outcome, result, error_code, error)
        except JobError as e:
            raise ApiError(404 if e.code == "unknown-job" else 400, e.code, e.message) from None
        return 200, {"status": "sent"}

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
