"""The simulated MFP's ``remote-panel`` app: a mirror of the device's touch screen.

``/`` draws the screen the device shows right now (status line, the current
screen, copies, toner) with the panel's buttons; pressing one (``POST
/press``) changes the simulated device and redirects back, so the page shows
the new state.  ``/api/screen`` gives the same as JSON.  Plain HTML forms,
no script: it works through any HTTP client.
"""

from __future__ import annotations

import html
import json

from twisted.web import server
from twisted.web.resource import Resource

from remotecomm.simulator.device_state import SCREENS, DeviceState, StateError
from remotecomm.simulator.firmware import SimulatorRequest

STYLE = """
body{margin:0;background:#111;font-family:system-ui,sans-serif;color:#eee}
.device{width:620px;margin:24px auto;background:#3a3f47;border-radius:18px;padding:18px}
.screen{background:#cfe3d4;color:#102;border-radius:8px;padding:14px 18px;min-height:170px}
.status{font-weight:700} .error{color:#b00020} .title{font-size:22px;margin:8px 0}
.keys{display:flex;flex-wrap:wrap;gap:10px;margin-top:16px} form{margin:0}
button{font-size:17px;padding:10px 18px;border:0;border-radius:8px;background:#5a6270;
color:#fff;cursor:pointer} .start{background:#2e9e5b} .stop{background:#c0392b}
.toner{font-size:13px;color:#334}
"""
KEY_LABELS = (("home", "Home"), ("copy", "Copy"), ("scan", "Scan"), ("fax", "Fax"),
              ("settings", "Settings"), ("minus", "−"), ("plus", "+"), ("start", "Start"),
              ("stop", "Stop"), ("reset", "Reset"))


class RemotePanel(Resource):
    """The ``remote-panel`` app's pages."""

    isLeaf = True

    def __init__(self, state: DeviceState):
        super().__init__()
        self.state = state

    def render(self, request: server.Request):
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"content-security-policy",
                          b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
        if self.state.restarting:
            request.setResponseCode(503)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"the device is restarting\n"
        if request.method == b"GET" and request.path == b"/":
            return self._screen(request)
        if request.method == b"GET" and request.path == b"/api/screen":
            request.setHeader(b"content-type", b"application/json")
            return json.dumps(self.state.summary()).encode("utf-8") + b"\n"
        if request.method == b"POST" and request.path == b"/press":
            return self._press(request)
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"no such page\n"

    def _screen(self, request: server.Request) -> bytes:
        s = self.state
        status_class = "status error" if s.error else "status"
        detail = ""
        if s.screen == "copy":
            detail = f'<p>Copies: <b id="copies">{s.copies}</b></p>'
        elif s.screen == "settings":
            detail = (f"<p>Serial {html.escape(s.serial)}, firmware "
                      f"{html.escape(s.firmware.version)}</p>")
        toner = " · ".join(f"{colour} {level}%" for colour, level in s.toner.items())
        keys = "".join(
            f'<form method="post" action="/press"><button name="button" value="{key}" '
            f'id="key-{key}" class="{key}">{label}</button></form>' for key, label in KEY_LABELS)
        body = (f'<div class="device"><div class="screen" id="screen" data-screen="{s.screen}">'
                f'<div class="{status_class}" id="status">{html.escape(s.status_text)}</div>'
                f'<div class="title" id="title">{SCREENS[s.screen]}</div>{detail}'
                f'<div class="toner">Toner: {toner}</div></div>'
                f'<div class="keys">{keys}</div></div>')
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
                f'<title>Remote panel – {html.escape(s.name)}</title><style>{STYLE}</style>'
                f'</head><body>{body}</body></html>').encode("utf-8")

    def _press(self, request: server.Request) -> bytes:
        button = (request.args.get(b"button") or [b""])[0].decode("utf-8", "replace")
        try:
            self.state.press(button)
        except StateError as e:
            request.setResponseCode(400)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return f"{e}\n".encode("utf-8")
        host = (request.getHeader(b"host") or b"127.0.0.1").decode("ascii", "replace")
        request.setResponseCode(303)
        request.setHeader(b"location", f"http://{host}/".encode("ascii", "replace"))
        return b""


def remote_panel_site(state: DeviceState) -> server.Site:
    """The ``remote-panel`` app as a twisted.web site."""
    site = server.Site(RemotePanel(state), timeout=60)
    site.requestFactory = SimulatorRequest
    site.displayTracebacks = False
    return site
