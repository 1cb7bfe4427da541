"""A unit's fleet as its users see it: the devices, their online state and what their
agents last said of them.  The REST API (``GET /api/v1/devices``) and the portal show
the same listing."""

from __future__ import annotations

from typing import Callable

from remotecomm.clock import iso_from_us
from remotecomm.store.devices import devices_of_unit
from remotecomm.store.engine import Store


class FleetListing:
    """Lists a unit's devices; ``link_up`` says whether the manager's own link to the XMPP
    server is up (without it, nobody knows who is online)."""

    def __init__(self, store: Store, link_up: Callable[[], bool] = lambda: True):
        self._store = store
        self._link_up = link_up

    async def devices(self, unit_id: str) -> dict:
        """The unit's devices that are not revoked, by device ID (``StoreBusy`` when the
        store is too busy)."""
        rows = await self._store.run(devices_of_unit, unit_id)
        known = self._link_up()
        return {
            "unit_id": unit_id,
            "presence_known": known,
            "devices": [{
                "device_id": row["device_id"],
                "name": row["name"],
                "model": row["model"],
                "online": bool(row["online"]) if known else None,
                "state": ("online" if row["online"] else "offline") if known else "unknown",
                "last_seen_at": iso_from_us(row["last_seen_us"]),
                "last_seen_us": row["last_seen_us"],
                # What its last hello said: versions, apps, the settings jobs may touch.
                "agent_version": row["agent_version"],
                "firmware_version": row["firmware_version"],
                "apps": row["apps"],
                "settings": row["settings"],
            } for row in rows],
        }
