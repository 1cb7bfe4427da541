"""Devices through the admin API: register, move, revoke (issue "Running the service").

Registering creates the device's row, then its XMPP account with
``prosodyctl`` (in a thread: it may take seconds); if the account cannot be
made, the row is removed again -- nothing is left half-created -- and the
call fails with ``503 xmpp-account-failed`` saying why.  ``prosodyctl
register`` writes Prosody's store directly, so a device registered while
Prosody is down is complete and connects once Prosody is back.  The answer
carries the agent's config (with its XMPP password) and the CA certificate,
shown this once: the manager keeps neither password nor config.

Moving needs an admin of both units.  Revoking hides the device, removes its
XMPP account and closes its connection; the broker's sweep ends its live
sessions within seconds.

Rotating its credentials: the new password goes to the agent over XMPP
(versioned); the agent saves it and answers; only then is the account's
password changed and the old connection closed, and the agent logs in with
the new one.  An offline device cannot be rotated (``409 device-offline``);
one that refuses leaves everything as it was.  Every change is audited.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from remotecomm.accounts.login import Caller
from remotecomm.accounts.permissions import PROVIDER_ADMIN, UNIT_ADMIN
from remotecomm.accounts.refusals import refusals_audited
from remotecomm.clock import now_us
from remotecomm.device.config import render_agent_config
from remotecomm.service_errors import ServiceError
from remotecomm.sessions.messages import Credentials, PanelLoginFailed
from remotecomm.store import devices as device_rows
from remotecomm.store.accounts import AlreadyExists, NotFound
from remotecomm.store.audit import append_audit, audited
from remotecomm.store.engine import Store
from remotecomm.xmpp.prosody import ProsodyError, ProsodyTools

log = Logger()


class FleetError(ServiceError):
    """A fleet request refused."""


class DeviceRegistry:
    """Registers, moves and revokes the devices of a unit."""

    def __init__(self, store: Store, clock: IReactorTime, xmpp, ca_certificate: Path,
                 tools: ProsodyTools | None = None, run_in_thread=deferToThread,
                 devices=None):
        self._devices = devices  # is_reachable(device_id), send(device_id, message)
        self._store = store
        self._clock = clock
        self._xmpp = xmpp  # the server's [xmpp] config (None: XMPP off)
        self._ca = ca_certificate
        self._tools = tools
        self._in_thread = run_in_thread

    async def _audited(self, caller: Caller, kind: str, unit_id: str, change, *args,
                       **detail):
        run = audited(change, now_us(self._clock), kind, actor=caller.user_id, unit_id=unit_id,
                      source_address=caller.source_address, **detail)
        try:
            return await self._store.run(run, *args)
        except AlreadyExists as e:
            raise FleetError(409, "already-exists", str(e)) from None
        except NotFound as e:
            raise FleetError(404, "device-not-found", str(e)) from None

    @refusals_audited
    async def register(self, caller: Caller, device_id: str, name: str, model: str) -> dict:
        """A new device in the caller's unit: its agent config and CA, this once."""
        await self._audited(caller, "device-registered", caller.unit_id,
                            device_rows.insert_device, device_id, caller.unit_id, name, model,
                            now_us(self._clock), device_id=device_id, name=name, model=model)
        answer = {"device_id": device_id, "unit_id": caller.unit_id, "name": name,
                  "model": model}
        if self._xmpp is None or self._tools is None:
            return answer
        password = secrets.token_urlsafe(24)
        try:
            await self._in_thread(self._tools.register, device_id, self._xmpp.devices_domain,
                                  password)
        except ProsodyError as e:
            await self._store.run(device_rows.delete_new_device, device_id)
            log.warn("registering {device_id}: its XMPP account failed ({error}); the device "
                     "was removed again", device_id=device_id, error=str(e))
            raise FleetError(503, "xmpp-account-failed", f"the device's XMPP account could "
                                                         f"not be made, so nothing was kept: "
                                                         f"{e}") from None
        answer["agent_config"] = render_agent_config(
            device_id, f"tcp:{self._xmpp.public_host}:{self._xmpp.c2s_port}",
            self._xmpp.devices_domain, password, "ca.pem", [self._xmpp.component_domain],
            secrets.token_urlsafe(24))
        answer["ca_certificate"] = self._ca.read_text()
        log.info("device {device_id} registered in {unit_id} by {user_id}",
                 device_id=device_id, unit_id=caller.unit_id, user_id=caller.user_id)
        return answer

    @refusals_audited
    async def move(self, caller: Caller, device_id: str, to_unit: str) -> dict:
        """Move a device of the caller's unit to another unit they administer."""
        admin_there = caller.role == PROVIDER_ADMIN or (to_unit, UNIT_ADMIN) in \
            caller.memberships
        if not admin_there:
            raise FleetError(404, "unit-not-found", f"no unit {to_unit} you administer")
        await self._audited(caller, "device-moved", caller.unit_id, device_rows.move_device,
                            device_id, caller.unit_id, to_unit, device_id=device_id,
                            to_unit=to_unit)
        return {"device_id": device_id, "unit_id": to_unit}

    @refusals_audited
    async def revoke(self, caller: Caller, device_id: str) -> dict:
        """Revoke a device of the caller's unit: hidden, its XMPP account gone, its
        connection closed, its sessions ended by the broker within seconds."""
        await self._audited(caller, "device-revoked", caller.unit_id,
                            device_rows.revoke_device, device_id, now_us(self._clock),
                            caller.unit_id, device_id=device_id)
        answer = {"device_id": device_id, "revoked": True, "xmpp_account": "kept"}
        if self._xmpp is not None and self._tools is not None:
            try:
                await self._in_thread(self._tools.delete, device_id, self._xmpp.devices_domain)
                await self._in_thread(self._tools.close_sessions, device_id,
                                      self._xmpp.devices_domain)
                answer["xmpp_account"] = "removed"
            except ProsodyError as e:
                log.error("{device_id} is revoked, but removing its XMPP account failed: "
                          "{error}", device_id=device_id, error=str(e))
                answer["xmpp_account"] = f"removal failed: {e}"
        return answer

    @refusals_audited
    async def rotate(self, caller: Caller, device_id: str) -> dict:
        """New XMPP credentials for a device of the caller's unit, saved by its agent first."""
        if await self._store.run(device_rows.device_unit, device_id) != caller.unit_id:
            raise FleetError(404, "device-not-found", f"no device {device_id} in your unit")
        if self._xmpp is None or self._tools is None or self._devices is None:
            raise FleetError(503, "unavailable", "XMPP is off on this manager")
        if not self._devices.is_reachable(device_id):
            raise FleetError(409, "device-offline", f"{device_id} is offline: its agent must "
                                                    f"save new credentials before they change")
        version = await self._store.run(device_rows.credentials_version, device_id) + 1
        password = secrets.token_urlsafe(24)
        try:
            await self._devices.send(device_id, Credentials(version, password))
        except Exception as e:
            condition = getattr(e, "condition", None)
            if condition is None or condition in ("service-unavailable",
                                                  "remote-server-timeout"):
                raise FleetError(409, "device-offline", f"{device_id} did not take the new "
                                                        f"credentials; nothing changed") from None
            raise FleetError(502, "device-refused", f"{device_id} refused the new "
                                                    f"credentials ({condition}); nothing "
                                                    f"changed") from None
        try:
            await self._in_thread(self._tools.register, device_id, self._xmpp.devices_domain,
                                  password)
        except ProsodyError as e:
            log.error("{device_id} saved credentials {version}, but the XMPP server kept the "
                      "old password: {error}", device_id=device_id, version=version,
                      error=str(e))
            raise FleetError(503, "xmpp-password-failed", f"the device saved the new "
                                                          f"credentials but the XMPP server "
                                                          f"kept the old password (the agent "
                                                          f"falls back to it): {e}") from None
        await self._audited(caller, "device-credentials-rotated", caller.unit_id,
                            device_rows.set_credentials_version, device_id, version,
                            device_id=device_id, version=version)
        try:
            await self._in_thread(self._tools.close_sessions, device_id,
                                  self._xmpp.devices_domain)
        except ProsodyError as e:
            log.warn("could not close the old connection of {device_id}: {error}",
                     device_id=device_id, error=str(e))
        log.info("credentials of {device_id} rotated to version {version} by {user_id}",
                 device_id=device_id, version=version, user_id=caller.user_id)
        return {"device_id": device_id, "credentials_version": version}


def panel_login_audit(store: Store, clock: IReactorTime):
    """The handler of devices' :class:`~remotecomm.sessions.messages.PanelLoginFailed`
    reports: each is audited under the device's unit (``panel-login-failed``)."""
    async def record(device_id: str, message: PanelLoginFailed, source: str) -> None:
        def audit(connection):
            unit_id = device_rows.device_unit(connection, device_id)
            append_audit(connection, now_us(clock), "panel-login-failed",
                         actor=message.operator, unit_id=unit_id, device_id=device_id,
                         device_at_us=message.at_us)

        await store.run(audit)
        log.info("failed panel login at {device_id} as {operator!r}", device_id=device_id,
                 operator=message.operator)

    return record
