"""The message catalogue: every text the CLI (and later the panel) shows a person.

Texts are looked up by a stable key so that a second language (Japanese is
expected) is a second table, not a hunt through the code.
"""

from __future__ import annotations

import os

CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "logged-in": "Logged in as {user_id} (unit {unit_id}) on terminal {terminal_id}; "
                     "the token expires at {expires_at}.",
        "logged-out": "Logged out.",
        "now": "now",
        "session-goes-on": "Your session with {device_id} goes on (logging out ends no "
                           "session): `remotecomm close {device_id}` ends it.",
        "set-password-token": "One-time token for {user_id} (valid 24 h, shown only now): "
                              "{token}\n  They set their password with: remotecomm passwd "
                              "--user {user_id} --token {token}",
        "unit-created": "Unit {unit_id} created.",
        "device-registered": "Device {device_id} registered.",
        "agent-config-saved": "Its agent config (with its XMPP password: keep it private) is "
                              "in {path}; fill in its [apps] and copy the folder to the "
                              "device.",
        "device-moved": "Device {device_id} moved to unit {unit_id}.",
        "device-rotated": "Device {device_id} saved new XMPP credentials (version {version}) "
                          "and logs in with them now.",
        "device-revoked-api": "Device {device_id} revoked (its XMPP account: {account}).",
        "password-reset": "The password of {user_id} was reset; their tokens were revoked.",
        "no-unit-chosen": "choose the unit first: remotecomm unit UNIT",
        "audit-written": "Wrote the audit log to {path}.",
        "current-password-prompt": "Current password: ",
        "new-password-prompt": "New password: ",
        "password-set": "Password set for {user_id}: log in with remotecomm login.",
        "password-changed": "Password changed; log in again (your tokens were revoked).",
        "choose-unit": "You belong to several units ({units}): choose the one to act in with "
                       "`remotecomm unit UNIT`.",
        "units": "Acting in unit {current}; your units: {units}{provider}.",
        "not-your-unit": "you have no unit {unit_id} (yours: {units})",
        "not-logged-in": "not logged in: run `remotecomm login` first",
        "no-server": "no server URL: use --server, REMOTECOMM_SERVER or server_url in {path}",
        "no-devices": "No devices in unit {unit_id}.",
        "devices-header": "Devices of unit {unit_id}:",
        "never": "never",
        "online": "online",
        "offline": "offline",
        "unknown": "unknown (the server has lost its link to the devices)",
        "unreachable": "cannot reach {url}: {reason}",
        "timeout": "no answer from {url} within {seconds:g} s",
        "server-error": "{message} ({code})",
        "bad-answer": "the server at {url} did not answer as remotecomm does (HTTP {status})",
        "password-prompt": "Password for {user_id}: ",
        "password-again": "Password again: ",
        "passwords-differ": "the passwords differ",
        "password-empty": "no password given",
        "waiting": "Waiting for approval on {device_id}… (an operator must press YES on its "
                   "panel before {deadline} UTC)",
        "approved": "Approved by {operator} on {device_id}; connecting the session …",
        "waiting-countdown": "Waiting for an operator of {device_id} to press YES: {left} left "
                             "(Ctrl-C withdraws the request)",
        "session-ended-after": "Session with {device_id} ended after {duration}; {sent} sent, "
                               "{received} received.",
        "refused": "Refused by {operator} on {device_id}.",
        "refused-test-approver": "Refused: {device_id} answered with its test approver, which "
                                 "this server does not allow.",
        "approval-timeout": "Nobody answered on {device_id} in time: no session.",
        "device-offline": "{device_id} is offline: no session.",
        "expired": "The session with {device_id} expired before it was joined.",
        "failed": "The session with {device_id} failed ({code}).",
        "interrupted": "Interrupted.",
        "no-sessions": "No session records in unit {unit_id} for this query.",
        "sessions-header": "Sessions of unit {unit_id} (newest first):",
        "sessions-more": "(more: narrow the query with --from/--to, or use --json)",
        "answer-too-large": "{url} sent more than this command takes; narrow the query",
        "report-header": "Sessions of unit {unit_id} from {start} to {end} ({zone}){by}:",
        "report-open": "{count} session(s) of the period still open: not counted yet.",
        "report-missing-device-info": "{count} session(s) without the device's information "
                                      "yet (`remotecomm sessions --collect` asks the devices).",
        "csv-written": "Wrote {path}.",
        "report-mailed": "Report queued for e-mail (mailing {mailing_id}) to {recipients}.",
        "schedule-added": "Schedule {schedule_id} added: {description}.",
        "schedule-removed": "Schedule {schedule_id} removed.",
        "no-schedules": "Unit {unit_id} has no report schedules.",
        "recipient-added": "{address} now gets the unit's reports.",
        "recipient-removed": "{address} no longer gets the unit's reports.",
        "no-recipients": "Unit {unit_id} has no report recipients.",
        "cannot-write": "cannot write {path}: {reason}",
        "maintain-usage": "say what to do: counters, supplies, config get KEY, config set KEY "
                          "VALUE, log, restart, or firmware FILE --version VERSION",
        "firmware-needs-version": "name the image's version: firmware FILE --version 4.3.0",
        "firmware-too-large": "{path} has {size} bytes; images may have at most {limit}",
        "cannot-read": "cannot read {path}: {reason}",
        "firmware-uploaded": "Uploaded {path} as firmware {version} ({image_id}, SHA-256 "
                             "{sha256}).",
        "firmware-installed": "Firmware {version} installed (was {previous}); the device "
                              "restarted.",
        "restarted": "The device restarted (down about {seconds} s) and is back.",
        "job-waiting": "{device_id} is offline: job {job_id} waits for it to come online "
                       "(Ctrl-C stops waiting here; the job stays queued).",
        "job-no-outcome": "Job {job_id} has no outcome yet; see `remotecomm jobs`.",
        "job-failed": "Job {job_id} {state}: {code} {error}",
        "job-cancelled": "Job {job_id} withdrawn.",
        "no-jobs": "Unit {unit_id} has no maintenance jobs for this query.",
        "collected": "Asked {asked} device(s) for what they kept: {collected} report(s) "
                     "collected, {missing} still missing.",
        "collect-offline": "Offline now, asked again when they come back: {devices}.",
        "collect-silent": "Did not answer in time, asked again later: {devices}.",
        "end-requested": "No `open` here holds the session with {device_id}: the manager "
                         "asked its relay to end it.",
        "session-ended-as": "The session with {device_id} has ended ({reason}).",
        "cancelled": "Cancelled: the request to {device_id} was withdrawn; no session.",
        "cancel-too-late": "Interrupted, but the request to {device_id} had already ended "
                           "({code}).",
        "cancel-failed": "Interrupted, but withdrawing the request to {device_id} failed "
                         "({reason}); it ends at its approval deadline.",
        "session-open": "Session with {device_id} is open (session {session_id}). Press Ctrl-C "
                        "or run `remotecomm close {device_id}` to end it.",
        "local-browser": "Browser: open {url} (the link works once; it sets a cookie).",
        "local-script": "Scripts: {url} with the header \"{header}: {secret}\".",
        "local-port-busy": "cannot listen on 127.0.0.1 port {port}: {reason}",
        "local-wrong-host": "This port serves only {url}",
        "local-cross-site": "Cross-site requests to a remotecomm session are refused.",
        "local-other-origin": "Requests from other sites to a remotecomm session are refused.",
        "local-origin-form": "Only origin-form request targets are served.",
        "local-not-found": "Not found.",
        "local-no-answer": "The device did not answer in time.",
        "local-http-version": "Use HTTP/1.1.",
        "local-head-too-large": "The request head is too large.",
        "local-busy": "The session is busy or has ended.",
        "local-bad-answer": "The device's answer could not be passed on.",
        "local-link-used": "This link is not valid (it works once). Use the access header "
                           "`remotecomm open` printed, or open a new session.",
        "local-cookie-set": "Session cookie set.",
        "local-no-access": "Open the link `remotecomm open` printed (it sets a cookie), or "
                           "send the access header it printed.",
        "local-device-refused": "The device refused or broke off this request: {reason}",
        "local-malformed": "Malformed request.",
        "session-ended": "Session with {device_id} ended.",
        "session-ended-by-device-after": "Session with {device_id} ended by the device's "
                                         "operator after {duration}; {sent} sent, {received} "
                                         "received.",
        "session-ended-by-device": "Session with {device_id} ended by the device's operator.",
        "session-ended-by-manager": "The session with {device_id} was ended by the server: "
                                    "{reason}.",
        "session-lost": "Session with {device_id} ended abnormally: {reason}",
        "relay-refused": "The relay refused this terminal: {reason}",
        "no-open-session": "no open session with {device_id} on this terminal",
        "close-sent": "Ending the session with {device_id}…",
        "init-ca": "Created the CA {path}",
        "init-ca-kept": "Kept the existing CA {path}",
        "init-cert": "Created the server certificate {path} for {names}",
        "init-cert-kept": "Kept the existing server certificate {path}",
        "init-db": "Database {path} is at schema {revision}",
        "unit-added": "Unit {unit_id} created ({time_zone}).",
        "provider-admin-added": "Provider admin {user_id} created (administers every unit).",
        "add-user-usage": "name the user's unit (--unit UNIT) or make them a provider admin "
                          "(--provider-admin), one of the two",
        "user-added": "User {user_id} created in unit {unit_id} as {role}.",
        "device-added": "Device {device_id} registered in unit {unit_id}.",
        "agent-config-written": "Device agent config written to {path} (it holds the "
                                "device's XMPP password; fill in [apps] and copy the folder "
                                "to the device).",
        "device-revoked": "Device {device_id} revoked; its live sessions end within "
                          "seconds.",
        "user-disabled": "User {user_id} disabled: no login, and their live sessions end "
                         "within seconds.",
        "user-enabled": "User {user_id} enabled again.",
        "xmpp-account-removed": "Its XMPP account is removed and its connection closed.",
        "xmpp-account-removed-offline": "Its XMPP account is removed (Prosody was not running, "
                                        "so there was no connection to close).",
        "init-secret": "Created the XMPP component secret {path}",
        "init-relay-secret": "Created the relay ↔ manager API secret {path}",
        "init-prosody": "Wrote the Prosody config {path}",
        # -- the portal (remotecomm/portal) ------------------------------------------------
        "portal-brand": "remotecomm",
        "portal-nav": "Main",
        "portal-devices": "Devices",
        "portal-choose-unit": "Choose unit",
        "portal-who": "{user_id} · unit {unit_id} · {role}",
        "portal-logout": "Log out",
        "portal-login-title": "Log in",
        "portal-login": "Log in",
        "portal-user-id": "User ID",
        "portal-password": "Password",
        "portal-login-incomplete": "Enter your user ID and password.",
        "portal-session-ended": "Your session has ended: log in again.",
        "portal-units-title": "Choose the unit to work in",
        "portal-unit-choice": "Unit {unit_id} ({role})",
        "portal-no-such-unit": "There is no such unit of yours.",
        "portal-devices-title": "Devices of unit {unit_id}",
        "portal-devices-caption": "{shown} of {total} devices",
        "portal-search": "Search",
        "portal-state": "State",
        "portal-filter": "Show",
        "portal-state-all": "all",
        "portal-state-online": "online",
        "portal-state-offline": "offline",
        "portal-state-unknown": "unknown",
        "portal-presence-unknown": "The server has lost its link to the devices: who is online "
                                   "is unknown.",
        "portal-no-devices": "No devices match.",
        "portal-col-name": "Name",
        "portal-col-device": "Device ID",
        "portal-col-model": "Model",
        "portal-col-state": "State",
        "portal-col-firmware": "Firmware",
        "portal-col-agent": "Agent",
        "portal-col-seen": "Last seen",
        "portal-col-apps": "Apps",
        "portal-no-such-device": "There is no such device in this unit.",
        "portal-back": "Back to the devices",
        "portal-error-title": "Not possible ({status})",
        "portal-not-found": "There is no such page.",
        "portal-failed": "Something went wrong on the server; the error is logged.",
        "portal-bad-csrf": "This form is out of date: reload the page and try again.",
        "portal-cross-origin": "Forms of other sites may not act here.",
        "portal-sessions": "Sessions",
        "portal-sessions-title": "Sessions of unit {unit_id}",
        "portal-session-title": "Session {request_id}",
        "portal-no-sessions": "Sessions are not served by this manager.",
        "portal-no-such-session": "There is no such session in this unit.",
        "portal-no-sessions-found": "No sessions.",
        "portal-shown": "Show",
        "portal-shown-open": "open",
        "portal-shown-ended": "ended",
        "portal-shown-all": "all",
        "portal-lifecycle-pending": "waiting for the operator",
        "portal-lifecycle-allocating": "approved, getting a relay",
        "portal-lifecycle-approved": "approved, waiting for the terminal",
        "portal-lifecycle-active": "running",
        "portal-lifecycle-ended": "ended",
        "portal-lifecycle-ended-why": "ended ({reason})",
        "portal-traffic": "{to} to the device, {back} back",
        "portal-end": "End",
        "portal-end-label": "End session {request_id}",
        "portal-col-requested": "Requested",
        "portal-col-app": "App",
        "portal-col-user": "User",
        "portal-col-started": "Started",
        "portal-col-traffic": "Traffic",
        "portal-col-action": "Action",
        "portal-col-request": "Request",
        "portal-col-terminal": "Terminal",
        "portal-col-operator": "Approved by",
        "portal-col-decided": "Decided",
        "portal-col-finished": "Finished",
        "portal-col-end-detail": "Detail",
        "portal-col-relay": "Relay",
        "portal-col-side": "Side",
        "portal-col-party": "Party",
        "portal-col-ended": "Ended",
        "portal-col-reason": "How it ended",
        "portal-col-to-side": "Bytes to it",
        "portal-col-from-side": "Bytes from it",
        "portal-side-device": "device",
        "portal-side-terminal": "terminal",
        "portal-sides": "Sides (from the relay's logs)",
        "portal-no-sides": "No side has joined yet.",
        "portal-device-report": "What the device reported",
        "portal-back-sessions": "Back to the sessions",
        "portal-device-sessions": "Latest sessions",
        "portal-device-all-sessions": "All sessions of this device",
    },
}


def text(key: str, **fields: object) -> str:
    """The text for ``key`` in the user's language (``REMOTECOMM_LANG``, default English)."""
    language = os.environ.get("REMOTECOMM_LANG", "en")
    table = CATALOGUE.get(language, CATALOGUE["en"])
    return table.get(key, CATALOGUE["en"][key]).format(**fields)
