"""Transaction functions for device records."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select

from remotecomm.store.accounts import AlreadyExists, NotFound
from remotecomm.store.schema import devices, units


def insert_device(connection: Connection, device_id: str, unit_id: str, name: str, model: str,
                  now_us: int) -> None:
    """Register a device in a unit (offline until it reports)."""
    if connection.execute(select(devices.c.device_id)
                          .where(devices.c.device_id == device_id)).first():
        raise AlreadyExists(f"device {device_id} exists already")
    if not connection.execute(select(units.c.unit_id).where(units.c.unit_id == unit_id)).first():
        raise NotFound(f"no unit {unit_id}")
    connection.execute(insert(devices).values(
        device_id=device_id, unit_id=unit_id, name=name, model=model, created_us=now_us,
        revoked_us=None, online=False, last_seen_us=None))


def devices_of_unit(connection: Connection, unit_id: str) -> list[dict]:
    """The unit's devices that are not revoked, by device ID."""
    rows = connection.execute(
        select(devices.c.device_id, devices.c.name, devices.c.model, devices.c.online,
               devices.c.last_seen_us)
        .where(devices.c.unit_id == unit_id, devices.c.revoked_us.is_(None))
        .order_by(devices.c.device_id))
    return [dict(row._mapping) for row in rows]
