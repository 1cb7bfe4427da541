"""The portal's pages, built with ``twisted.web.template`` tags.

Every value goes into the page through the template, which escapes it:
device-reported text (names, models, versions) is untrusted and renders as
text.  No page has inline script or style (the Content-Security-Policy
forbids both); texts come from the message catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.web.template import Tag, flattenString, tags

from remotecomm.accounts.permissions import allowed
from remotecomm.clock import iso_from_us
from remotecomm.identifiers import DEVICE_ID, VERSION_TEXT
from remotecomm.maintenance.lifecycle import OPEN_STATES as JOB_OPEN_STATES
from remotecomm.maintenance.messages import ACTIONS
from remotecomm.messages import text
from remotecomm.portal.charts import bar_chart, column_chart

STYLESHEET = "/portal/static/portal.css"
SCRIPT = "/portal/static/portal.js"


def _main(*children, **attributes) -> Tag:
    """``<main>`` (newer than twisted.web.template's list of tags)."""
    return Tag("main")(*children, **attributes)


@dataclass(frozen=True)
class Viewer:
    """Who looks at a page: their user ID, the unit they act in and their role there,
    their units, and the CSRF token their forms carry."""

    user_id: str
    unit_id: str | None
    role: str
    units: tuple[tuple[str, str], ...]
    csrf: str


async def render(page: Tag) -> bytes:
    """A page as an HTML document."""
    return b"<!DOCTYPE html>\n" + await flattenString(None, page)


def _csrf_field(viewer: Viewer) -> Tag:
    return tags.input(type="hidden", name="csrf", value=viewer.csrf)


def _field(label_key: str, name: str, field_id: str, maxlength: int, value: str = "",
           required: bool = False, **attributes) -> Tag:
    """A labelled text input (``type`` and more through ``attributes``)."""
    attributes.setdefault("type", "text")
    if required:
        attributes["required"] = ""
    return tags.label(text(label_key), tags.input(
        name=name, id=field_id, value=value, maxlength=str(maxlength), **attributes),
        for_=field_id)


def _header(viewer: Viewer | None) -> Tag:
    brand = tags.a(text("portal-brand"), href="/portal/", class_="brand")
    if viewer is None:
        return tags.header(tags.nav(brand, **{"aria-label": text("portal-nav")}))
    links = [tags.a(text("portal-devices"), href="/portal/"),
             tags.a(text("portal-sessions"), href="/portal/sessions"),
             tags.a(text("portal-reports"), href="/portal/reports")]
    if viewer.unit_id is not None and allowed(viewer.role, "firmware.upload"):
        links.append(tags.a(text("portal-firmware"), href="/portal/firmware"))
    if viewer.unit_id is not None and allowed(viewer.role, "users.list"):
        links.append(tags.a(text("portal-users"), href="/portal/users"))
    if viewer.unit_id is not None and allowed(viewer.role, "audit.read"):
        links.append(tags.a(text("portal-audit"), href="/portal/audit"))
    if len(viewer.units) > 1 or viewer.unit_id is None or allowed(viewer.role, "units.manage"):
        links.append(tags.a(text("portal-choose-unit"), href="/portal/units"))
    who = text("portal-who", user_id=viewer.user_id, unit_id=viewer.unit_id or "–",
               role=viewer.role)
    logout = tags.form(_csrf_field(viewer), tags.button(text("portal-logout"), type="submit"),
                       method="post", action="/portal/logout", class_="logout")
    return tags.header(tags.nav(brand, *links, **{"aria-label": text("portal-nav")}),
                       tags.span(who, class_="who"), logout)


def layout(title: str, viewer: Viewer | None, *content, watch: str | None = None,
           seen: str = "") -> Tag:
    """The frame of every page: head, header with navigation, the page's content;
    ``watch`` names what the page follows live and ``seen`` what it shows of it now
    (``portal.js`` reloads the page when that changes)."""
    live = {"data-watch": watch, "data-seen": seen} if watch else {}
    return tags.html(lang="en")(
        tags.head(tags.meta(charset="utf-8"),
                  tags.meta(name="viewport", content="width=device-width, initial-scale=1"),
                  tags.title(f"{title} · {text('portal-brand')}"),
                  tags.link(rel="stylesheet", href=STYLESHEET),
                  tags.script(src=SCRIPT, defer="")),
        tags.body(_header(viewer), _main(tags.h1(title), *content, id="main", **live)))


def _facts(pairs, list_id: str | None = None, class_: str = "facts",
           label=text) -> Tag:
    """A definition list of ``(label key, value)`` pairs (``label`` turns a key into the
    text shown: the catalogue's, by default)."""
    return tags.dl(*[part for key, value in pairs
                     for part in (tags.dt(label(key)), tags.dd(value))],
                   class_=class_, **({"id": list_id} if list_id else {}))


def _notice(message: str | None, kind: str = "error") -> list:
    return [tags.p(message, class_=f"notice {kind}", role="alert")] if message else []


def login_page(nonce: str, message: str | None = None, user_id: str = "") -> Tag:
    """The login form (its nonce matches the login cookie)."""
    return layout(text("portal-login-title"), None, *_notice(message), tags.form(
        tags.input(type="hidden", name="nonce", value=nonce),
        tags.label(text("portal-user-id"), tags.input(
            type="text", name="user_id", value=user_id, required="", autocomplete="username",
            autocapitalize="none", spellcheck="false", maxlength="128", id="user_id"),
            for_="user_id"),
        tags.label(text("portal-password"), tags.input(
            type="password", name="password", required="", autocomplete="current-password",
            id="password"), for_="password"),
        tags.button(text("portal-login"), type="submit", id="login"),
        method="post", action="/portal/login", class_="stacked"))


def units_page(viewer: Viewer, choices: list[tuple[str, str]] | None = None,
               may_create: bool = False, current: dict | None = None) -> Tag:
    """Choose the unit to act in; a provider admin creates units, a unit admin renames
    theirs or sets its time zone."""
    buttons = [tags.li(tags.form(
        _csrf_field(viewer), tags.input(type="hidden", name="unit_id", value=unit_id),
        tags.button(text("portal-unit-choice", unit_id=unit_id, role=role), type="submit"),
        method="post", action="/portal/unit"))
        for unit_id, role in (viewer.units if choices is None else choices)]
    content = [tags.ul(*buttons, class_="choices")]
    if current is not None:
        content += [tags.h2(text("portal-unit-settings", unit_id=current["unit_id"])),
                    tags.form(
                        _csrf_field(viewer),
                        _field("portal-col-name", "name", "unit_name", 200, current["name"]),
                        _field("portal-time-zone", "time_zone", "unit_zone", 64,
                               current["time_zone"]),
                        tags.button(text("portal-save"), type="submit"),
                        method="post", action="/portal/change-unit", class_="filters")]
    if may_create:
        content += [tags.h2(text("portal-create-unit")), tags.form(
            _csrf_field(viewer),
            _field("portal-unit-id", "unit_id", "new_unit_id", 64, required=True,
                   autocapitalize="none"),
            _field("portal-col-name", "name", "new_unit_name", 200),
            _field("portal-time-zone", "time_zone", "new_unit_zone", 64, "UTC"),
            tags.button(text("portal-create"), type="submit", id="create-unit"),
            method="post", action="/portal/create-unit", class_="filters")]
    return layout(text("portal-units-title"), viewer, *content)


def _state(device: dict) -> Tag:
    state = device["state"]
    return tags.span(text(f"portal-state-{state}"), class_=f"state {state}")


def _seen(us: int | None) -> str:
    return iso_from_us(us).replace("T", " ")[:19] + " UTC" if us else text("never")


def _supplies(answer: dict | None) -> Tag | str:
    """The newest supplies job's answer, short: toner levels and an error if there was
    one (the device's own words: untrusted, shown as text, only what fits)."""
    if not answer or not isinstance(answer.get("result"), dict):
        return "–"
    result = answer["result"]
    toner = result.get("toner") if isinstance(result.get("toner"), dict) else {}
    levels = [f"{name} {level}%" for name, level in list(toner.items())[:6]
              if isinstance(level, (int, float))]
    parts: list = [" · ".join(levels) or "–"]
    error = result.get("error")
    if isinstance(error, str) and error:
        parts += [tags.br(), tags.span(error[:80], class_="supply-error")]
    return tags.span(*parts, title=text("portal-as-of", when=_when(answer["finished_us"])))


def devices_page(viewer: Viewer, fleet: dict, query: str, state: str,
                 supplies: dict | None = None, seen: str = "", may_manage: bool = False) -> Tag:
    """The unit's fleet, filtered by a search text and a state, with what the newest
    supplies jobs answered; it follows who is online live."""
    supplies = supplies or {}
    devices = [d for d in fleet["devices"] if _matches(d, query) and (
        state == "all" or d["state"] == state)]
    filters = tags.form(
        tags.label(text("portal-search"), tags.input(type="search", name="q", value=query,
                                                     id="q", maxlength="100"), for_="q"),
        tags.label(text("portal-state"), tags.select(
            *[tags.option(text(f"portal-state-{value}"), value=value,
                          **({"selected": ""} if value == state else {}))
              for value in ("all", "online", "offline")], name="state", id="state"),
            for_="state"),
        tags.button(text("portal-filter"), type="submit"),
        method="get", action="/portal/", class_="filters", role="search")
    notices = [] if fleet["presence_known"] else _notice(text("portal-presence-unknown"),
                                                         "warning")
    if not devices:
        listing = tags.p(text("portal-no-devices"), class_="empty")
    else:
        head = tags.thead(tags.tr(*[tags.th(text(key), scope="col") for key in (
            "portal-col-name", "portal-col-device", "portal-col-model", "portal-col-state",
            "portal-col-firmware", "portal-col-agent", "portal-col-seen",
            "portal-col-supplies")]))
        rows = [tags.tr(
            tags.td(tags.a(d["name"], href=f"/portal/devices/{d['device_id']}")),
            tags.td(d["device_id"], class_="id"), tags.td(d["model"] or "–"),
            tags.td(_state(d)), tags.td(d["firmware_version"] or "–"),
            tags.td(d["agent_version"] or "–"), tags.td(_seen(d["last_seen_us"])),
            tags.td(_supplies(supplies.get(d["device_id"])), class_="supplies"),
            **{"data-device": d["device_id"]}) for d in devices]
        listing = tags.div(tags.table(
            tags.caption(text("portal-devices-caption", shown=len(devices),
                              total=len(fleet["devices"]))),
            head, tags.tbody(*rows), id="devices"), class_="table")
    register = []
    if may_manage:
        register = [tags.details(tags.summary(text("portal-register-title")), tags.form(
            _csrf_field(viewer),
            _field("portal-col-device", "device_id", "new_device_id", 64, required=True,
                   pattern=DEVICE_ID, autocapitalize="none"),
            _field("portal-col-name", "name", "new_name", 200),
            _field("portal-col-model", "model", "new_model", 200),
            tags.button(text("portal-register"), type="submit", id="register"),
            method="post", action="/portal/register", class_="filters"), id="register-device")]
    return layout(text("portal-devices-title", unit_id=viewer.unit_id), viewer, *notices,
                  filters, listing, *register, watch="fleet", seen=seen)


def firmware_page(viewer: Viewer, images: list[dict]) -> Tag:
    """The unit's firmware images, and uploading one (with a progress bar: the script
    sends the file as the request's body)."""
    upload = tags.form(
        _field("portal-firmware-version", "version", "version", 32, required=True,
               pattern=VERSION_TEXT),
        tags.label(text("portal-firmware-file"), tags.input(
            type="file", name="image", id="image", required=""), for_="image"),
        tags.button(text("portal-upload"), type="submit", id="upload-button"),
        tags.progress("", value="0", max="100", id="upload-progress", hidden=""),
        tags.span("", id="upload-status", role="status"),
        method="post", action="/portal/firmware", id="upload", class_="filters",
        **{"data-upload": "", "data-csrf": viewer.csrf})
    may_delete = allowed(viewer.role, "firmware.delete")

    def delete(image: dict) -> list:
        if not may_delete:
            return []
        return [tags.td(tags.form(
            _csrf_field(viewer), tags.button(text("portal-delete"), type="submit"),
            method="post", action=f"/portal/delete-image/{image['image_id']}"))]

    if images:
        listing = tags.div(tags.table(
            tags.thead(tags.tr(*[tags.th(text(key), scope="col") for key in (
                "portal-firmware-version", "portal-firmware-size", "portal-firmware-sha256",
                "portal-col-user", "portal-col-when")
                + (("portal-col-delete",) if may_delete else ())])),
            tags.tbody(*[tags.tr(tags.td(image["version"]), tags.td(_bytes(image["size"])),
                                 tags.td(tags.code(image["sha256"][:16] + "…"),
                                         title=image["sha256"]),
                                 tags.td(image["uploaded_by"]),
                                 tags.td(_when(image["uploaded_us"])),
                                 *delete(image),
                                 **{"data-image": image["image_id"]})
                         for image in images]), id="images"), class_="table")
    else:
        listing = tags.p(text("portal-no-images"), class_="empty")
    return layout(text("portal-firmware-title", unit_id=viewer.unit_id), viewer,
                  tags.p(text("portal-firmware-hint"), class_="hint"), upload, listing)


def registered_page(viewer: Viewer, answer: dict) -> Tag:
    """A device just registered: its agent config and the CA, shown this once."""
    content = [tags.p(text("portal-registered", device_id=answer["device_id"],
                           unit_id=answer["unit_id"]), class_="notice ok", role="status")]
    if "agent_config" in answer:
        content += [
            tags.p(text("portal-config-once"), class_="notice warning"),
            tags.h2("device-agent.toml"), tags.pre(tags.code(answer["agent_config"]),
                                                  id="agent-config"),
            tags.h2("ca.pem"), tags.pre(tags.code(answer["ca_certificate"]), id="ca")]
    else:
        content.append(tags.p(text("portal-no-xmpp-config"), class_="hint"))
    content.append(tags.p(tags.a(text("portal-back"), href="/portal/")))
    return layout(text("portal-registered-title", device_id=answer["device_id"]), viewer,
                  *content)


def _matches(device: dict, query: str) -> bool:
    if not query:
        return True
    needle = query.casefold()
    return any(needle in (device[key] or "").casefold()
               for key in ("device_id", "name", "model", "firmware_version"))


def _request_form(viewer: Viewer, device: dict, terminals: list[dict]) -> list:
    """Ask for a session: one of the device's apps, for one of the user's CLI terminals."""
    heading = tags.h2(text("portal-ask-title"))
    if device["state"] != "online":
        return [heading, tags.p(text("portal-ask-offline"), class_="empty")]
    if not device["apps"]:
        return [heading, tags.p(text("portal-ask-no-apps"), class_="empty")]
    if not terminals:
        return [heading, tags.p(text("portal-ask-no-terminal"), class_="empty")]
    return [heading, tags.form(
        _csrf_field(viewer),
        tags.label(text("portal-col-app"), tags.select(
            *[tags.option(app, value=app) for app in device["apps"]], name="app_id",
            id="app_id"), for_="app_id"),
        tags.label(text("portal-col-terminal"), tags.select(
            *[tags.option(text("portal-terminal-choice", terminal_id=t["terminal_id"],
                               when=_when(t["last_login_us"])), value=t["terminal_id"])
              for t in terminals], name="terminal_id", id="terminal_id"), for_="terminal_id"),
        tags.button(text("portal-ask"), type="submit", id="ask"),
        method="post", action=f"/portal/request/{device['device_id']}", class_="filters"),
        tags.p(text("portal-ask-hint"), class_="hint")]


def _maintenance(viewer: Viewer, device: dict, jobs: list[dict], images: list[dict]) -> list:
    """Run an action on the device, and its latest jobs."""
    settings = [spec["name"] for spec in device.get("settings") or []]
    fields = [
        _csrf_field(viewer),
        tags.label(text("portal-job-action"), tags.select(
            *[tags.option(text(f"portal-action-{action}"), value=action)
              for action in ACTIONS if action != "firmware" or images],
            name="action", id="action"), for_="action"),
        tags.label(text("portal-job-setting"), tags.select(
            tags.option("–", value=""), *[tags.option(name, value=name) for name in settings],
            name="key", id="key"), for_="key"),
        tags.label(text("portal-job-value"), tags.input(type="text", name="value", id="value",
                                                        maxlength="256"), for_="value")]
    if images:
        fields.append(tags.label(text("portal-job-image"), tags.select(
            tags.option("–", value=""),
            *[tags.option(f"{image['version']} ({_bytes(image['size'])})",
                          value=image["image_id"]) for image in images],
            name="image_id", id="image_id"), for_="image_id"))
    fields += [tags.label(tags.input(type="checkbox", name="wait_online", value="1",
                                     id="wait_online"),
                          " ", text("portal-job-wait"), for_="wait_online", class_="check"),
               tags.button(text("portal-job-run"), type="submit", id="run-job")]
    listing = tags.p(text("portal-no-jobs-yet"), class_="empty")
    if jobs:
        listing = tags.div(tags.table(
            tags.thead(tags.tr(*[tags.th(text(key), scope="col") for key in (
                "portal-col-requested", "portal-job-action", "portal-col-state",
                "portal-col-user")])),
            tags.tbody(*[tags.tr(tags.td(tags.a(_when(job["created_us"]),
                                                href=f"/portal/job/{job['job_id']}")),
                                 tags.td(text(f"portal-action-{job['action']}")),
                                 tags.td(_job_state(job)), tags.td(job.get("user_id") or "–"))
                         for job in jobs]), class_="jobs"), class_="table")
    return [tags.h2(text("portal-maintenance")),
            tags.form(*fields, method="post", action=f"/portal/jobs/{device['device_id']}",
                      class_="filters", id="maintenance"),
            listing]


def _job_state(job: dict) -> Tag:
    state = job["state"]
    label = text(f"portal-job-{state}")
    if job.get("error_code"):
        label += f" ({job['error_code']})"
    return tags.span(label, class_=f"job-state {state}")


def job_page(viewer: Viewer, job: dict, seen: str = "") -> Tag:
    """One maintenance job: what was asked, where it stands (live), what came back."""
    facts = [("portal-job-action", text(f"portal-action-{job['action']}")),
             ("portal-col-state", _job_state(job)),
             ("portal-col-device", tags.a(job["device_id"],
                                          href=f"/portal/devices/{job['device_id']}")),
             ("portal-col-user", job.get("user_id") or "–"),
             ("portal-col-requested", _when(job.get("created_us"))),
             ("portal-job-sent-at", _when(job.get("sent_us"))),
             ("portal-col-finished", _when(job.get("finished_us")))]
    for key, name in (("key", "portal-job-setting"), ("value", "portal-job-value"),
                      ("image_id", "portal-job-image"), ("error", "portal-col-end-detail")):
        if job.get(key):
            facts.append((name, job[key]))
    content = [_facts(facts, "job")]
    progress = job.get("progress")
    if progress and job["state"] in JOB_OPEN_STATES:
        content.append(tags.p(
            text(f"portal-phase-{progress['phase']}"), " ",
            tags.progress(f"{progress['percent']} %", value=str(progress["percent"]),
                          max="100", id="job-progress"), f" {progress['percent']} %",
            class_="progress"))
    if job["state"] == "queued":
        content.append(tags.form(_csrf_field(viewer), tags.button(
            text("portal-job-withdraw"), type="submit", class_="danger"),
            method="post", action=f"/portal/withdraw/{job['job_id']}", class_="inline"))
    result = job.get("result")
    if result:
        content.append(tags.h2(text("portal-job-result")))
        content.append(_result(result))
    return layout(text("portal-job-title", job_id=job["job_id"]), viewer, *content,
                  watch=f"job:{job['job_id']}" if job["state"] in JOB_OPEN_STATES else None,
                  seen=seen)


def _result(value) -> Tag:
    """A job's result (JSON from the device: untrusted, shown as text)."""
    if isinstance(value, dict):
        return _facts([(key, _result(item)) for key, item in value.items()],
                      class_="facts result", label=str)
    if isinstance(value, list):
        if all(not isinstance(item, (dict, list)) for item in value):
            return tags.pre(tags.code("\n".join(str(item) for item in value)))
        return tags.ol(*[tags.li(_result(item)) for item in value])
    return tags.span("–" if value is None else str(value))


def _device_admin(viewer: Viewer, device: dict, move_to: list[str]) -> list:
    """Rotate the device's XMPP credentials, move it to another unit, revoke it."""
    device_id = device["device_id"]
    forms = [tags.form(_csrf_field(viewer), tags.button(text("portal-rotate"), type="submit",
                                                        id="rotate"),
                       method="post", action=f"/portal/rotate/{device_id}", class_="inline")]
    if move_to:
        forms.append(tags.form(
            _csrf_field(viewer),
            tags.label(text("portal-move-to"), tags.select(
                *[tags.option(unit, value=unit) for unit in move_to], name="unit_id",
                id="move_unit"), for_="move_unit"),
            tags.button(text("portal-move"), type="submit"),
            method="post", action=f"/portal/move/{device_id}", class_="filters"))
    forms.append(tags.form(
        _csrf_field(viewer),
        tags.label(tags.input(type="checkbox", name="confirm", value="yes", required="",
                              id="confirm_revoke"), " ", text("portal-revoke-check"),
                   for_="confirm_revoke", class_="check"),
        tags.button(text("portal-revoke"), type="submit", class_="danger", id="revoke"),
        method="post", action=f"/portal/revoke/{device_id}", class_="filters"))
    return [tags.h2(text("portal-device-admin")), *forms]


def device_page(viewer: Viewer, device: dict, recent: list[dict] = (),
                may_end=lambda record: False, terminals: list[dict] = (),
                sessions_served: bool = False, jobs: list[dict] | None = None,
                images: list[dict] = (), may_manage: bool = False,
                move_to: list[str] = (), notice: str | None = None) -> Tag:
    """One device: what its agent last said of it, asking it for a session, and its latest
    sessions."""
    facts = [
        ("portal-col-device", device["device_id"]), ("portal-col-model", device["model"]),
        ("portal-col-state", _state(device)),
        ("portal-col-firmware", device["firmware_version"] or "–"),
        ("portal-col-agent", device["agent_version"] or "–"),
        ("portal-col-seen", _seen(device["last_seen_us"])),
        ("portal-col-apps", ", ".join(device["apps"]) or "–"),
    ]
    return layout(device["name"], viewer, *_notice(notice, "ok"), _facts(facts, "device"),
        *(_request_form(viewer, device, list(terminals)) if sessions_served else []),
        *(_maintenance(viewer, device, jobs, list(images)) if jobs is not None else []),
        *(_device_admin(viewer, device, list(move_to)) if may_manage else []),
        tags.h2(text("portal-device-sessions")),
        _sessions_table(viewer, recent, may_end, show_device=False),
        tags.p(tags.a(text("portal-device-all-sessions"),
                      href=f"/portal/sessions?state=all&device_id={device['device_id']}")),
        tags.p(tags.a(text("portal-back"), href="/portal/")))


def _when(us: int | None) -> str:
    return iso_from_us(us).replace("T", " ")[:19] if us else "–"


def _bytes(count: int | None) -> str:
    if count is None:
        return "–"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def _traffic(record: dict) -> str:
    device = record.get("connections", {}).get("device")
    if device is None:
        return "–"
    return text("portal-traffic", to=_bytes(device["bytes_to_side"]),
                back=_bytes(device["bytes_from_side"]))


def _session_state(record: dict) -> Tag:
    state = record["state"]
    label = text(f"portal-lifecycle-{state}")
    if state == "ended" and record.get("end_reason"):
        label = text("portal-lifecycle-ended-why", reason=record["end_reason"])
    return tags.span(label, class_=f"session-state {state}")


def _end_form(viewer: Viewer, record: dict) -> Tag:
    return tags.form(_csrf_field(viewer), tags.button(
        text("portal-end"), type="submit", class_="danger",
        **{"aria-label": text("portal-end-label", request_id=record["request_id"])}),
        method="post", action=f"/portal/end/{record['request_id']}", class_="inline")


def _sessions_table(viewer: Viewer, found: list[dict], may_end, show_device=True) -> Tag:
    if not found:
        return tags.p(text("portal-no-sessions-found"), class_="empty")
    columns = ["portal-col-requested", "portal-col-device", "portal-col-app",
               "portal-col-user", "portal-col-state", "portal-col-started",
               "portal-col-traffic", "portal-col-action"]
    if not show_device:
        columns.remove("portal-col-device")
    rows = []
    for record in found:
        cells = [tags.td(tags.a(_when(record["requested_at_us"]),
                                href=f"/portal/session/{record['request_id']}"))]
        if show_device:
            cells.append(tags.td(tags.a(record["device_id"],
                                        href=f"/portal/devices/{record['device_id']}")))
        cells += [tags.td(record["app_id"]), tags.td(record["user_id"]),
                  tags.td(_session_state(record)),
                  tags.td(_when(record.get("started_at_us"))), tags.td(_traffic(record)),
                  tags.td(_end_form(viewer, record) if may_end(record) else "")]
        rows.append(tags.tr(*cells, **{"data-session": record["request_id"]}))
    return tags.div(tags.table(
        tags.thead(tags.tr(*[tags.th(text(key), scope="col") for key in columns])),
        tags.tbody(*rows), class_="sessions"), class_="table")


def sessions_page(viewer: Viewer, found: list[dict], shown: str, asked: dict,
                  may_end, seen: str = "", live: bool = False) -> Tag:
    """The unit's sessions, newest first: open ones by default (followed live), ended ones
    or all, filtered by device, app, user, how they ended and the day they were asked for
    (UTC)."""
    def field(name: str, label: str, kind: str = "text", size: int = 64) -> Tag:
        return _field(label, name, f"filter_{name}", size, asked.get(name, ""), type=kind)

    filters = tags.form(
        tags.label(text("portal-shown"), tags.select(
            *[tags.option(text(f"portal-shown-{value}"), value=value,
                          **({"selected": ""} if value == shown else {}))
              for value in ("open", "ended", "all")], name="state", id="state"), for_="state"),
        field("device_id", "portal-col-device"), field("app_id", "portal-col-app"),
        field("user_id", "portal-col-user", size=128),
        field("end_reason", "portal-col-reason", size=32),
        field("from", "portal-from-day", "date"), field("to", "portal-to-day", "date"),
        tags.button(text("portal-filter"), type="submit"),
        method="get", action="/portal/sessions", class_="filters")
    return layout(text("portal-sessions-title", unit_id=viewer.unit_id), viewer, filters,
                  _sessions_table(viewer, found, may_end),
                  watch="sessions" if live else None, seen=seen)


def session_page(viewer: Viewer, record: dict, may_end: bool, seen: str = "") -> Tag:
    """One session's whole record: who, what, when, how it ended, each side, the device's
    own report."""
    facts = [("portal-col-request", record["request_id"]),
             ("portal-col-state", _session_state(record)),
             ("portal-col-device", tags.a(record["device_id"],
                                          href=f"/portal/devices/{record['device_id']}")),
             ("portal-col-app", record["app_id"]), ("portal-col-user", record["user_id"]),
             ("portal-col-terminal", record["terminal_id"]),
             ("portal-col-operator", record.get("operator") or "–"),
             ("portal-col-requested", _when(record.get("requested_at_us"))),
             ("portal-col-decided", _when(record.get("decided_at_us"))),
             ("portal-col-started", _when(record.get("started_at_us"))),
             ("portal-col-finished", _when(record.get("finished_at_us"))),
             ("portal-col-end-detail", record.get("end_detail") or "–"),
             ("portal-col-relay", record.get("relay_node") or "–")]
    sides = record.get("connections", {})
    side_rows = [tags.tr(
        tags.th(text(f"portal-side-{side}"), scope="row"), tags.td(values["party_id"]),
        tags.td(_when(values.get("started_at_us"))), tags.td(_when(values.get("ended_at_us"))),
        tags.td(values.get("end_reason") or "–",
                *([" ", text("portal-ended-by-manager")]
                  if values.get("end_written_by") == "manager" else [])),
        tags.td(_bytes(values.get("bytes_to_side"))),
        tags.td(_bytes(values.get("bytes_from_side")))) for side, values in sides.items()]
    content = []
    state = record["state"]
    if state == "pending":
        deadline = record["approval_deadline_us"]
        content.append(tags.p(text("portal-waiting", device_id=record["device_id"]), " ",
                              tags.time(text("portal-until", when=_when(deadline)),
                                        datetime=iso_from_us(deadline),
                                        **{"data-deadline": str(deadline // 1000)}),
                              class_="notice warning", id="progress", role="status"))
    elif state in ("allocating", "approved"):
        content.append(tags.div(
            tags.p(text("portal-approved-by", operator=record.get("operator") or "?")),
            tags.p(text("portal-join-on", terminal_id=record["terminal_id"])),
            tags.pre(tags.code(f"remotecomm join {record['request_id']}")),
            class_="notice ok", id="progress", role="status"))
    content.append(_facts(facts, "record"))
    if may_end:
        content.append(_end_form(viewer, record))
    content.append(tags.h2(text("portal-sides")))
    content.append(tags.div(tags.table(
        tags.thead(tags.tr(*[tags.th(text(key), scope="col") for key in (
            "portal-col-side", "portal-col-party", "portal-col-started", "portal-col-ended",
            "portal-col-reason", "portal-col-to-side", "portal-col-from-side")])),
        tags.tbody(*side_rows), id="sides"), class_="table") if side_rows
        else tags.p(text("portal-no-sides"), class_="empty"))
    device = record.get("device")
    if device:
        content.append(tags.h2(text("portal-device-report")))
        content.append(_facts([(key, _when(value) if key.endswith("_at_us") else str(value))
                               for key, value in sorted(device.items())], "device-report",
                              label=str))
    content.append(tags.p(tags.a(text("portal-back-sessions"), href="/portal/sessions")))
    return layout(text("portal-session-title", request_id=record["request_id"]), viewer,
                  *content, watch=f"session:{record['request_id']}" if state != "ended"
                  else None, seen=seen)


def _duration(us: int) -> str:
    minutes = round(us / 60_000_000)
    return text("portal-hours", hours=minutes // 60, minutes=minutes % 60)


def _figures_table(caption: str, key_title: str, rows: list[tuple[str, str]], id_: str) -> Tag:
    return tags.details(tags.summary(text("portal-as-table")), tags.table(
        tags.caption(caption),
        tags.thead(tags.tr(tags.th(key_title, scope="col"),
                           tags.th(text("portal-value"), scope="col"))),
        tags.tbody(*[tags.tr(tags.th(key, scope="row"), tags.td(value)) for key, value in rows]),
        id=id_))


def _chart_section(title_key: str, key_title: str, rows: list[tuple[str, float, str]],
                   table_id: str, draw) -> Tag:
    """One chart of a report (or a word that there is nothing to draw) and its table."""
    title = text(title_key)
    return tags.section(
        tags.h2(title),
        draw(title, rows) if rows else tags.p(text("portal-nothing-yet"), class_="empty"),
        _figures_table(title, text(key_title), [(key, shown) for key, _, shown in rows],
                       table_id),
        class_="chart-block")


def reports_page(viewer: Viewer, by_day: dict, by_device: dict, asked: dict, *,
                 may_mail: bool, mail_enabled: bool, notice: str | None) -> Tag:
    """The unit's report for a period: totals, three charts (sessions per day, time per
    device, ends by reason) each with its table, CSV downloads, e-mail now."""
    totals = by_day["totals"]
    query = "".join(f"{name}={value}&" for name, value in asked.items() if value)
    form = tags.form(
        tags.label(text("portal-from"), tags.input(type="date", name="from", id="from",
                                                   value=asked.get("from") or ""), for_="from"),
        tags.label(text("portal-to"), tags.input(type="date", name="to", id="to",
                                                 value=asked.get("to") or ""), for_="to"),
        tags.button(text("portal-filter"), type="submit"),
        method="get", action="/portal/reports", class_="filters")
    summary = _facts((
        ("portal-period", f"{by_day['from'][:10]} – {by_day['to'][:10]} ({by_day['time_zone']})"),
        ("portal-total-sessions", str(totals["sessions"])),
        ("portal-total-run", str(totals["sessions_run"])),
        ("portal-total-time", _duration(totals["duration_us"])),
        ("portal-total-traffic", text("portal-traffic", to=_bytes(totals["bytes_to_device"]),
                                      back=_bytes(totals["bytes_from_device"]))),
        ("portal-still-open", str(len(by_day["open_sessions"])))), "totals")
    days = [(group["key"], group["sessions"], str(group["sessions"]))
            for group in by_day["groups"]]
    devices = [(group["key"], group["duration_us"], _duration(group["duration_us"]))
               for group in by_device["groups"]]
    ends = [(reason, count, str(count)) for reason, count in totals["ends"].items()]
    charts = [_chart_section("portal-chart-days", "portal-day", days, "table-days",
                             column_chart),
              _chart_section("portal-chart-devices", "portal-col-device", devices,
                             "table-devices", bar_chart),
              _chart_section("portal-chart-ends", "portal-col-reason", ends, "table-ends",
                             bar_chart)]
    downloads = tags.p(
        tags.a(text("portal-csv-days"), href=f"/portal/reports.csv?{query}group_by=day",
               download="", id="csv-days"), " · ",
        tags.a(text("portal-csv-devices"), href=f"/portal/reports.csv?{query}group_by=device",
               download=""), class_="downloads")
    mail = []
    if may_mail:
        mail = [tags.form(_csrf_field(viewer),
                          tags.input(type="hidden", name="from", value=asked.get("from") or ""),
                          tags.input(type="hidden", name="to", value=asked.get("to") or ""),
                          tags.button(text("portal-mail-now"), type="submit",
                                      **({} if mail_enabled else {"disabled": ""})),
                          *([] if mail_enabled else [tags.span(text("portal-mail-off"),
                                                               class_="hint")]),
                          method="post", action="/portal/send-report", class_="inline")]
    return layout(text("portal-reports-title", unit_id=viewer.unit_id), viewer,
                  *_notice(notice, "ok"), form, summary, downloads, *mail, *charts)


def users_page(viewer: Viewer, users: list[dict], may_manage: bool) -> Tag:
    """The unit's users, with Disable and Enable for those who may manage them."""
    rows = []
    for user in users:
        role = next((m["role"] for m in user["memberships"]
                     if m["unit_id"] == viewer.unit_id), "–")
        state = text("portal-user-disabled") if user["disabled"] else text("portal-user-active")
        action = ""
        if may_manage and user["user_id"] != viewer.user_id:
            verb = "enable" if user["disabled"] else "disable"
            uid = user["user_id"]
            action = tags.div(
                tags.form(_csrf_field(viewer), tags.button(
                    text(f"portal-{verb}"), type="submit",
                    class_="danger" if verb == "disable" else "",
                    **{"aria-label": text(f"portal-{verb}-label", user_id=uid)}),
                    method="post", action=f"/portal/{verb}/{uid}", class_="inline"),
                tags.form(_csrf_field(viewer), tags.select(
                    *[tags.option(text(f"portal-role-{r}"), value=r,
                                  **({"selected": ""} if r == role else {}))
                      for r in ("technician", "unit-admin", "none")], name="role",
                    **{"aria-label": text("portal-role-label", user_id=uid)}),
                    tags.button(text("portal-set-role"), type="submit"),
                    method="post", action=f"/portal/role/{uid}", class_="inline"),
                tags.form(_csrf_field(viewer), tags.button(
                    text("portal-reset-password"), type="submit",
                    **{"aria-label": text("portal-reset-label", user_id=uid)}),
                    method="post", action=f"/portal/reset-password/{uid}", class_="inline"),
                class_="actions")
        rows.append(tags.tr(tags.td(user["user_id"]), tags.td(user["display_name"]),
                            tags.td(role + (" · " + text("portal-provider-admin")
                                            if user["provider_admin"] else "")),
                            tags.td(tags.span(state, class_="user-state " + (
                                "disabled" if user["disabled"] else "active"))),
                            tags.td(action), **{"data-user": user["user_id"]}))
    table = tags.div(tags.table(
        tags.thead(tags.tr(*[tags.th(text(key), scope="col") for key in (
            "portal-col-user", "portal-col-display-name", "portal-col-role",
            "portal-col-state", "portal-col-action")])),
        tags.tbody(*rows), id="users"), class_="table")
    add = []
    if may_manage:
        add = [tags.h2(text("portal-add-user")), tags.form(
            _csrf_field(viewer),
            _field("portal-col-user", "user_id", "new_user_id", 128, required=True,
                   autocapitalize="none"),
            _field("portal-col-display-name", "display_name", "new_display_name", 200),
            tags.label(text("portal-col-role"), tags.select(
                *[tags.option(text(f"portal-role-{r}"), value=r)
                  for r in ("technician", "unit-admin")], name="role", id="new_role"),
                for_="new_role"),
            tags.button(text("portal-add"), type="submit", id="add-user"),
            method="post", action="/portal/add-user", class_="filters")]
    return layout(text("portal-users-title", unit_id=viewer.unit_id), viewer, table, *add)


def password_token_page(viewer: Viewer, user_id: str, token: str, created: bool) -> Tag:
    """A one-time set-password token, shown this once, and how the user uses it."""
    return layout(text("portal-user-created" if created else "portal-password-was-reset",
                       user_id=user_id), viewer,
                  tags.p(text("portal-token-once"), class_="notice warning"),
                  tags.pre(tags.code(f"remotecomm passwd --user {user_id} --token {token}"),
                           id="password-token"),
                  tags.p(tags.a(text("portal-back-users"), href="/portal/users")))


def audit_page(viewer: Viewer, records: list[dict], kinds: tuple[str, ...], kind: str,
               actor: str) -> Tag:
    """The unit's audit log, newest first, filtered by kind and actor."""
    filters = tags.form(
        tags.label(text("portal-audit-kind"), tags.select(
            tags.option(text("portal-state-all"), value=""),
            *[tags.option(value, value=value, **({"selected": ""} if value == kind else {}))
              for value in kinds], name="kind", id="kind"), for_="kind"),
        tags.label(text("portal-audit-actor"), tags.input(
            type="text", name="actor", value=actor, id="actor", maxlength="200"),
            for_="actor"),
        tags.button(text("portal-filter"), type="submit"),
        method="get", action="/portal/audit", class_="filters")
    if not records:
        listing = tags.p(text("portal-no-audit"), class_="empty")
    else:
        rows = [tags.tr(tags.td(_when(record["at_us"])), tags.td(record["kind"]),
                        tags.td(record.get("actor") or "–"),
                        tags.td(record.get("source_address") or "–"),
                        tags.td(", ".join(f"{k}={v}" for k, v in sorted(
                            (record.get("detail") or {}).items()))))
                for record in records]
        listing = tags.div(tags.table(
            tags.thead(tags.tr(*[tags.th(text(key), scope="col") for key in (
                "portal-col-when", "portal-audit-kind", "portal-audit-actor",
                "portal-col-source", "portal-col-detail")])),
            tags.tbody(*rows), id="audit"), class_="table")
    return layout(text("portal-audit-title", unit_id=viewer.unit_id), viewer, filters, listing)


def error_page(viewer: Viewer | None, status: int, message: str) -> Tag:
    """A refusal, said plainly."""
    return layout(text("portal-error-title", status=status), viewer,
                  tags.p(message, class_="notice error", role="alert"),
                  tags.p(tags.a(text("portal-back"), href="/portal/")))
