"""The portal's cookie session, CSRF tokens, form reading and security headers.

A login issues an ordinary API token (same accounts, throttling, audit and
lifetime as the REST API), bound to a terminal ID made for this browser
(``portal-…``).  The cookie carries terminal ID, acting unit and token; it
is ``HttpOnly``, ``Secure``, ``SameSite=Strict`` and scoped to ``/portal``
(the REST API refuses any request with a cookie).  Every form carries a
CSRF token derived from the session's token, which a page of another
origin can neither read nor compute; the login form carries a one-time
nonce from its own cookie instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs

from twisted.web import server

from remotecomm.accounts.login import PORTAL_TERMINAL_PREFIX
from remotecomm.identifiers import TERMINAL_ID, UNIT_ID, is_valid
from remotecomm.service_errors import ServiceError

SESSION_COOKIE = b"remotecomm_portal"
LOGIN_COOKIE = b"remotecomm_login"
PATH = b"/portal"
LOGIN_NONCE_LIFETIME = 600
MAX_FORM_FIELDS = 20
MAX_FIELD = 2048
CONTENT_SECURITY_POLICY = (b"default-src 'none'; script-src 'self'; style-src 'self'; "
                           b"img-src 'self'; connect-src 'self'; form-action 'self'; "
                           b"frame-ancestors 'none'; base-uri 'none'")


@dataclass(frozen=True)
class PortalSession:
    """What the session cookie says: the browser's terminal ID, the unit it acts in
    (``None``: the user's only unit, or none chosen yet), when its token expires (epoch
    seconds: the cookie's lifetime when it is set again) and the API token."""

    terminal_id: str
    unit_id: str | None
    expires_s: int
    token: str

    def encode(self) -> bytes:
        return (f"{self.terminal_id}:{self.unit_id or '-'}:{self.expires_s}:"
                f"{self.token}").encode("ascii")

    @classmethod
    def decode(cls, value: bytes | None) -> "PortalSession | None":
        """The session a cookie value stands for, or ``None`` if it is not one of ours."""
        if not value or len(value) > 300:
            return None
        try:
            terminal_id, unit_id, expires, token = value.decode("ascii").split(":")
        except (UnicodeDecodeError, ValueError):
            return None
        if not is_valid(TERMINAL_ID, terminal_id) or not token or not expires.isdigit():
            return None
        if unit_id != "-" and not is_valid(UNIT_ID, unit_id) or len(expires) > 12:
            return None
        return cls(terminal_id, None if unit_id == "-" else unit_id, int(expires), token)

    @property
    def csrf(self) -> str:
        """The CSRF token of this session's forms."""
        digest = hashlib.sha256(b"remotecomm-portal-csrf:" + self.token.encode()).digest()
        return base64.urlsafe_b64encode(digest)[:32].decode("ascii")


def new_terminal_id() -> str:
    """A terminal ID for one browser login."""
    return PORTAL_TERMINAL_PREFIX + secrets.token_urlsafe(18)


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted token."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def set_cookie(request: server.Request, name: bytes, value: bytes, max_age: int,
               path: bytes = PATH) -> None:
    """Set a portal cookie with every flag it needs (a zero ``max_age`` removes it)."""
    request.addCookie(name, value, max_age=str(max(0, int(max_age))).encode(), path=path,
                      secure=True, httpOnly=True, sameSite="strict")


def security_headers(request: server.Request) -> None:
    """The headers of every portal answer."""
    request.setHeader(b"server", b"remotecomm")
    request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY)
    request.setHeader(b"x-frame-options", b"DENY")
    request.setHeader(b"x-content-type-options", b"nosniff")
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on our own
    # forms, which the origin check must refuse.
    request.setHeader(b"referrer-policy", b"same-origin")
    request.setHeader(b"cache-control", b"no-store")
    if request.isSecure():
        request.setHeader(b"strict-transport-security", b"max-age=31536000")


def read_form(request: server.Request) -> dict[str, str]:
    """A POSTed form (``application/x-www-form-urlencoded``): one value per field, bounded;
    anything else is a :class:`ServiceError`."""
    if getattr(request, "body_too_large", False):
        raise ServiceError(413, "body-too-large", "the form is too large")
    content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if content_type != b"application/x-www-form-urlencoded":
        raise ServiceError(415, "unsupported-media-type", "send the form as a web form")
    request.content.seek(0)
    try:
        raw = request.content.read().decode("utf-8")
        fields = parse_qs(raw, keep_blank_values=True, strict_parsing=False,
                          max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise ServiceError(400, "bad-form", "the form could not be read") from None
    form = {}
    for name, values in fields.items():
        if len(values) != 1 or len(values[0]) > MAX_FIELD:
            raise ServiceError(400, "bad-form", f"the field {name!r} is not one short value")
        form[name] = values[0]
    return form


def same_origin(request: server.Request) -> bool:
    """Whether a state-changing request came from a portal page: an ``Origin`` header, when
    the browser sends one, names this very host."""
    origin = request.getHeader(b"origin")
    if origin is None:
        return True
    host = request.getHeader(b"host") or b""
    scheme = b"https://" if request.isSecure() else b"http://"
    return origin == scheme + host
