"""The portal's pages, built with ``twisted.web.template`` tags.

Every value goes into the page through the template, which escapes it:
device-reported text (names, models, versions) is untrusted and renders as
text.  No page has inline script or style (the Content-Security-Policy
forbids both); texts come from the message catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.web.template import Tag, flattenString, tags

from remotecomm.clock import iso_from_us
from remotecomm.messages import text

STYLESHEET = "/portal/static/portal.css"


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


def _header(viewer: Viewer | None) -> Tag:
    brand = tags.a(text("portal-brand"), href="/portal/", class_="brand")
    if viewer is None:
        return tags.header(tags.nav(brand, **{"aria-label": text("portal-nav")}))
    links = [tags.a(text("portal-devices"), href="/portal/")]
    if len(viewer.units) > 1 or viewer.unit_id is None:
        links.append(tags.a(text("portal-choose-unit"), href="/portal/units"))
    who = text("portal-who", user_id=viewer.user_id, unit_id=viewer.unit_id or "–",
               role=viewer.role)
    logout = tags.form(_csrf_field(viewer), tags.button(text("portal-logout"), type="submit"),
                       method="post", action="/portal/logout", class_="logout")
    return tags.header(tags.nav(brand, *links, **{"aria-label": text("portal-nav")}),
                       tags.span(who, class_="who"), logout)


def layout(title: str, viewer: Viewer | None, *content) -> Tag:
    """The frame of every page: head, header with navigation, the page's content."""
    return tags.html(lang="en")(
        tags.head(tags.meta(charset="utf-8"),
                  tags.meta(name="viewport", content="width=device-width, initial-scale=1"),
                  tags.title(f"{title} · {text('portal-brand')}"),
                  tags.link(rel="stylesheet", href=STYLESHEET)),
        tags.body(_header(viewer), _main(tags.h1(title), *content, id="main")))


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


def units_page(viewer: Viewer) -> Tag:
    """Choose the unit to act in."""
    buttons = [tags.li(tags.form(
        _csrf_field(viewer), tags.input(type="hidden", name="unit_id", value=unit_id),
        tags.button(text("portal-unit-choice", unit_id=unit_id, role=role), type="submit"),
        method="post", action="/portal/unit")) for unit_id, role in viewer.units]
    return layout(text("portal-units-title"), viewer, tags.ul(*buttons, class_="choices"))


def _state(device: dict) -> Tag:
    state = device["state"]
    return tags.span(text(f"portal-state-{state}"), class_=f"state {state}")


def _seen(us: int | None) -> str:
    return iso_from_us(us).replace("T", " ")[:19] + " UTC" if us else text("never")


def devices_page(viewer: Viewer, fleet: dict, query: str, state: str) -> Tag:
    """The unit's fleet, filtered by a search text and a state."""
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
            "portal-col-firmware", "portal-col-agent", "portal-col-seen")]))
        rows = [tags.tr(
            tags.td(tags.a(d["name"], href=f"/portal/devices/{d['device_id']}")),
            tags.td(d["device_id"], class_="id"), tags.td(d["model"] or "–"),
            tags.td(_state(d)), tags.td(d["firmware_version"] or "–"),
            tags.td(d["agent_version"] or "–"), tags.td(_seen(d["last_seen_us"])),
            **{"data-device": d["device_id"]}) for d in devices]
        listing = tags.div(tags.table(
            tags.caption(text("portal-devices-caption", shown=len(devices),
                              total=len(fleet["devices"]))),
            head, tags.tbody(*rows), id="devices"), class_="table")
    return layout(text("portal-devices-title", unit_id=viewer.unit_id), viewer, *notices,
                  filters, listing)


def _matches(device: dict, query: str) -> bool:
    if not query:
        return True
    needle = query.casefold()
    return any(needle in (device[key] or "").casefold()
               for key in ("device_id", "name", "model", "firmware_version"))


def device_page(viewer: Viewer, device: dict) -> Tag:
    """One device: what its agent last said of it."""
    facts = [
        ("portal-col-device", device["device_id"]), ("portal-col-model", device["model"]),
        ("portal-col-state", _state(device)),
        ("portal-col-firmware", device["firmware_version"] or "–"),
        ("portal-col-agent", device["agent_version"] or "–"),
        ("portal-col-seen", _seen(device["last_seen_us"])),
        ("portal-col-apps", ", ".join(device["apps"]) or "–"),
    ]
    return layout(device["name"], viewer, tags.dl(
        *[part for key, value in facts for part in (tags.dt(text(key)), tags.dd(value))],
        class_="facts", id="device"),
        tags.p(tags.a(text("portal-back"), href="/portal/")))


def error_page(viewer: Viewer | None, status: int, message: str) -> Tag:
    """A refusal, said plainly."""
    return layout(text("portal-error-title", status=status), viewer,
                  tags.p(message, class_="notice error", role="alert"),
                  tags.p(tags.a(text("portal-back"), href="/portal/")))
