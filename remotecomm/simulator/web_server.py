"""The simulated MFP's ``web-server`` app: the device's own configuration pages.

What a technician finds on a real MFP's embedded web server, on 127.0.0.1
of the device (reached only through a session):

* ``/`` status page (state, error, toner levels, counters);
* ``/api/status`` the same as JSON;
* ``/address-book`` list, add (``POST``), delete (``POST /address-book/delete``);
* ``/error`` (``POST``) put the device into an error state or clear it;
* ``/firmware`` upload form; ``POST /firmware`` (a browser's form) or
  ``PUT /firmware`` (a script's raw body) streams the image to disk;
  ``/firmware/image`` downloads the installed image; ``/firmware/progress``
  shows uploads while they run.

After a form the app redirects with an absolute ``Location`` built from the
``Host`` it was asked for, as many embedded servers do.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path

from twisted.web import server, static
from twisted.web.resource import Resource

from remotecomm.http_files import StreamedUpload, UploadError
from remotecomm.simulator.device_state import ERRORS, DeviceState, StateError
from remotecomm.simulator.firmware import IMAGE_NAME, SimulatorRequest, firmware_uploads

STYLE = """
body{margin:0;font-family:system-ui,sans-serif;background:#f3f5f8;color:#1d2630}
nav{background:#1f4e79;padding:10px 20px} nav a{color:#fff;margin-right:18px;
text-decoration:none;font-weight:600} main{max-width:860px;margin:20px auto;padding:0 16px}
.card{background:#fff;border-radius:10px;padding:16px 20px;margin:14px 0;
box-shadow:0 1px 4px #0002} .ok{color:#1e7e34} .bad{color:#b02a37;font-weight:600}
.bar{background:#e3e7ec;border-radius:5px;height:14px;width:240px;display:inline-block}
.fill{height:14px;border-radius:5px;display:block} table{border-collapse:collapse}
td,th{padding:4px 14px 4px 0;text-align:left} .note{color:#555;font-size:14px}
"""
TONER_COLOURS = {"cyan": "#17a2b8", "magenta": "#d63384", "yellow": "#e0b100",
                 "black": "#333"}


def page(state: DeviceState, title: str, body: str) -> bytes:
    """An HTML page of the device's web server."""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<title>{html.escape(title)} – {html.escape(state.name)}</title>'
            f'<style>{STYLE}</style></head><body><nav><a href="/">Status</a>'
            f'<a href="/address-book">Address book</a><a href="/firmware">Firmware</a></nav>'
            f'<main><h1>{html.escape(title)}</h1>{body}</main></body></html>').encode("utf-8")


def _form_value(request: server.Request, name: bytes) -> str:
    values = request.args.get(name) or [b""]
    return values[0].decode("utf-8", "replace")


def _back_to(request: server.Request, path: str) -> bytes:
    """An absolute redirect to ``path`` on the host the request named."""
    host = (request.getHeader(b"host") or b"127.0.0.1").decode("ascii", "replace")
    request.setResponseCode(303)
    request.setHeader(b"location", f"http://{host}{path}".encode("ascii", "replace"))
    return b""


class WebServer(Resource):
    """The ``web-server`` app's pages."""

    isLeaf = True

    def __init__(self, state: DeviceState, firmware_folder: Path):
        super().__init__()
        self.state = state
        self.firmware_folder = firmware_folder

    def render(self, request: server.Request):
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        routes = {(b"GET", b"/"): self._status, (b"GET", b"/api/status"): self._api_status,
                  (b"GET", b"/address-book"): self._address_book,
                  (b"POST", b"/address-book"): self._add_contact,
                  (b"POST", b"/address-book/delete"): self._delete_contact,
                  (b"POST", b"/error"): self._set_error,
                  (b"GET", b"/firmware"): self._firmware_page,
                  (b"POST", b"/firmware"): self._upload, (b"PUT", b"/firmware"): self._upload,
                  (b"GET", b"/firmware/image"): self._download,
                  (b"HEAD", b"/firmware/image"): self._download,
                  (b"GET", b"/firmware/progress"): self._progress}
        if self.state.restarting:
            request.setResponseCode(503)
            return self._html(request, "Restarting", "<p>The device is restarting.</p>")
        handler = routes.get((request.method, request.path))
        if handler is None:
            known = {path for _, path in routes}
            request.setResponseCode(405 if request.path in known else 404)
            return self._html(request, "Not here", "<p>There is no such page.</p>")
        if getattr(request, "body_too_large", False):
            request.setResponseCode(413)
            return self._html(request, "Too large", "<p>That form is too large.</p>")
        return handler(request)

    def _html(self, request: server.Request, title: str, body: str) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return page(self.state, title, body)

    def _json(self, request: server.Request, status: int, value: dict) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(value).encode("utf-8") + b"\n"

    # -- status ---------------------------------------------------------------------

    def _status(self, request):
        s = self.state
        status = (f'<p class="bad">Error: {html.escape(s.status_text)}</p>' if s.error
                  else f'<p class="ok">{html.escape(s.status_text)}</p>')
        toner = "".join(
            f'<tr><td>{colour.capitalize()}</td><td><span class="bar"><span class="fill" '
            f'style="width:{level}%;background:{TONER_COLOURS[colour]}"></span></span></td>'
            f'<td>{level}%</td></tr>' for colour, level in s.toner.items())
        counters = "".join(f"<tr><td>{name.capitalize()}</td><td>{count:,}</td></tr>"
                           for name, count in s.counters.items())
        errors = "".join(f'<option value="{code}"{" selected" if code == s.error else ""}>'
                         f'{html.escape(text)}</option>' for code, text in ERRORS.items())
        body = (f'<div class="card"><h2>{html.escape(s.name)}</h2><p>{html.escape(s.model)}, '
                f'serial {html.escape(s.serial)}, firmware {html.escape(s.firmware.version)}'
                f'</p><div id="status" data-status="{s.status}">{status}</div></div>'
                f'<div class="card"><h2>Toner</h2><table>{toner}</table></div>'
                f'<div class="card"><h2>Counters</h2><table>{counters}</table></div>'
                f'<div class="card"><h2>Simulate a fault</h2><form method="post" '
                f'action="/error"><select name="error"><option value="">No error</option>'
                f'{errors}</select> <button>Apply</button></form></div>')
        return self._html(request, "Device status", body)

    def _api_status(self, request):
        summary = self.state.summary()
        summary["contacts"] = len(self.state.contacts)
        return self._json(request, 200, summary)

    def _set_error(self, request):
        code = _form_value(request, b"error") or None
        try:
            self.state.set_error(code)
        except StateError as e:
            request.setResponseCode(400)
            return self._html(request, "Not changed", f"<p>{html.escape(str(e))}</p>")
        return _back_to(request, "/")

    # -- address book ----------------------------------------------------------------

    def _address_book(self, request, problem: str | None = None):
        rows = "".join(
            f'<tr><td>{html.escape(c.name)}</td><td>{html.escape(c.email)}</td><td>'
            f'<form method="post" action="/address-book/delete"><input type="hidden" '
            f'name="id" value="{c.contact_id}"><button>Delete</button></form></td></tr>'
            for c in self.state.contacts.values())
        note = f'<p class="bad">{html.escape(problem)}</p>' if problem else ""
        body = (f'<div class="card">{note}<table id="contacts"><tr><th>Name</th><th>E-mail'
                f'</th><th></th></tr>{rows}</table></div><div class="card"><h2>Add</h2>'
                f'<form method="post" action="/address-book"><input name="name" '
                f'placeholder="Name"> <input name="email" placeholder="E-mail"> '
                f'<button>Add</button></form></div>')
        return self._html(request, "Address book", body)

    def _add_contact(self, request):
        try:
            self.state.add_contact(_form_value(request, b"name"), _form_value(request, b"email"))
        except StateError as e:
            request.setResponseCode(400)
            return self._address_book(request, str(e))
        return _back_to(request, "/address-book")

    def _delete_contact(self, request):
        try:
            self.state.delete_contact(int(_form_value(request, b"id")))
        except (StateError, ValueError):
            request.setResponseCode(404)
            return self._address_book(request, "No such entry.")
        return _back_to(request, "/address-book")

    # -- firmware --------------------------------------------------------------------

    def _firmware_page(self, request):
        f = self.state.firmware
        installed = (f"<p>Last image: {f.size:,} bytes, SHA-256 <code>{f.sha256}</code>, "
                     f'uploaded {f.uploaded_at}. <a href="/firmware/image">Download</a></p>'
                     if f.sha256 else "<p>No image was uploaded yet.</p>")
        body = (f'<div class="card"><p>Installed version {html.escape(f.version)}.</p>'
                f'{installed}</div><div class="card"><h2>Update</h2>'
                f'<form method="post" action="/firmware" enctype="multipart/form-data">'
                f'<input type="file" name="firmware"> <button>Upload</button></form>'
                f'<p class="note">Images up to 256 MiB.</p></div>')
        return self._html(request, "Firmware", body)

    def _upload(self, request: SimulatorRequest):
        upload: StreamedUpload | None = request.upload
        wants_json = request.method == b"PUT"
        error = UploadError("no image")
        if upload is not None:
            try:
                size, digest = upload.finish(self.firmware_folder / IMAGE_NAME)
            except UploadError as e:
                error = e
            else:
                f = self.state.firmware
                f.size, f.sha256 = size, digest
                f.uploaded_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
                if wants_json:
                    return self._json(request, 200, {"size": size, "sha256": digest})
                return self._html(request, "Firmware received",
                                  f'<div class="card"><p id="result">Received {size:,} bytes, '
                                  f'SHA-256 <code>{digest}</code>.</p></div>')
        if wants_json:
            return self._json(request, error.status, {"error": error.message})
        request.setResponseCode(error.status)
        return self._html(request, "Firmware refused", f"<p>{html.escape(error.message)}</p>")

    def _download(self, request):
        image = self.firmware_folder / IMAGE_NAME
        if not image.exists():
            request.setResponseCode(404)
            return self._html(request, "No image", "<p>No image was uploaded yet.</p>")
        resource = static.File(str(image), defaultType="application/octet-stream")
        request.setHeader(b"content-disposition", b'attachment; filename="firmware.bin"')
        return resource.render(request)

    def _progress(self, request):
        uploads = [{"received": u.received, "stored": u.size}
                   for u in request.channel.site.uploads]
        return self._json(request, 200, {"uploads": uploads})


def web_server_site(state: DeviceState, firmware_folder: Path) -> server.Site:
    """The ``web-server`` app as a twisted.web site (firmware bodies stream)."""
    site = server.Site(WebServer(state, firmware_folder), timeout=60)
    site.requestFactory = SimulatorRequest
    site.displayTracebacks = False
    site.firmware_folder = firmware_folder
    site.upload_for = firmware_uploads(firmware_folder)
    site.uploads = set()
    return site
