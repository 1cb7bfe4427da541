"""Transaction functions for device records: registration, presence, hello, revocation."""

from __future__ import annotations

import json

from sqlalchemy import Connection, delete, insert, select, update

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


def revoke_device(connection: Connection, device_id: str, now_us: int,
                  unit_id: str | None = None) -> None:
    """Mark a device revoked (and offline); it disappears from listings.  ``unit_id``: only
    if it is that unit's (an admin revokes their own unit's devices only)."""
    where = [devices.c.device_id == device_id, devices.c.revoked_us.is_(None)]
    if unit_id is not None:
        where.append(devices.c.unit_id == unit_id)
    result = connection.execute(update(devices).where(*where)
                                .values(revoked_us=now_us, online=False))
    if result.rowcount != 1:
        raise NotFound(f"no device {device_id}" + (f" in unit {unit_id}" if unit_id else "")
                       + " (or it is revoked already)")


def devices_of_unit(connection: Connection, unit_id: str) -> list[dict]:
    """The unit's devices that are not revoked, by device ID."""
    rows = connection.execute(
        select(devices.c.device_id, devices.c.name, devices.c.model, devices.c.online,
               devices.c.last_seen_us, devices.c.agent_version, devices.c.apps,
               devices.c.firmware_version, devices.c.settings)
        .where(devices.c.unit_id == unit_id, devices.c.revoked_us.is_(None))
        .order_by(devices.c.device_id))
    return [dict(row._mapping, apps=json.loads(row.apps),
                 settings=json.loads(row.settings or "[]")) for row in rows]


def active_device_ids(connection: Connection) -> list[str]:
    """Every device that is not revoked."""
    return list(connection.execute(select(devices.c.device_id)
                                   .where(devices.c.revoked_us.is_(None))).scalars())


def set_device_presence(connection: Connection, device_id: str, online: bool,
                        now_us: int) -> bool:
    """Record a presence change; whether the device is registered and not revoked."""
    result = connection.execute(
        update(devices).where(devices.c.device_id == device_id, devices.c.revoked_us.is_(None))
        .values(online=online, last_seen_us=now_us))
    return result.rowcount == 1


def record_hello(connection: Connection, device_id: str, agent_version: str,
                 envelope_version: int, apps: list[str], now_us: int,
                 firmware_version: str | None = None, settings: list[dict] | None = None,
                 settings_version: int | None = None) -> bool:
    """Store what a device's hello said; whether the device is registered and not revoked."""
    result = connection.execute(
        update(devices).where(devices.c.device_id == device_id, devices.c.revoked_us.is_(None))
        .values(agent_version=agent_version, envelope_version=envelope_version,
                apps=json.dumps(apps), last_hello_us=now_us, last_seen_us=now_us,
                firmware_version=firmware_version, settings=json.dumps(settings or []),
                settings_version=settings_version))
    return result.rowcount == 1


def mark_silent_devices_offline(connection: Connection, silent_since_us: int,
                                now_us: int) -> list[str]:
    """Devices shown online that sent no presence since ``silent_since_us`` go offline."""
    silent = list(connection.execute(
        select(devices.c.device_id).where(
            devices.c.online.is_(True),
            (devices.c.last_seen_us.is_(None)) | (devices.c.last_seen_us < silent_since_us))
    ).scalars())
    if silent:
        connection.execute(update(devices).where(devices.c.device_id.in_(silent))
                           .values(online=False))
    return silent


def device_unit(connection: Connection, device_id: str) -> str | None:
    """The unit of a device that is not revoked (``None``: no such device)."""
    return connection.execute(select(devices.c.unit_id).where(
        devices.c.device_id == device_id, devices.c.revoked_us.is_(None))).scalar()


def delete_new_device(connection: Connection, device_id: str) -> None:
    """Undo a registration whose XMPP account could not be made (the device never ran)."""
    connection.execute(delete(devices).where(devices.c.device_id == device_id,
                                             devices.c.last_seen_us.is_(None)))


def move_device(connection: Connection, device_id: str, from_unit: str, to_unit: str) -> None:
    """Move a device of ``from_unit`` to ``to_unit``."""
    if not connection.execute(select(units.c.unit_id).where(units.c.unit_id == to_unit)).first():
        raise NotFound(f"no unit {to_unit}")
    result = connection.execute(update(devices).where(
        devices.c.device_id == device_id, devices.c.unit_id == from_unit,
        devices.c.revoked_us.is_(None)).values(unit_id=to_unit))
    if result.rowcount != 1:
        raise NotFound(f"no device {device_id} in unit {from_unit}")


def credentials_version(connection: Connection, device_id: str) -> int:
    """How many times the device's credentials were rotated."""
    return connection.execute(select(devices.c.credentials_version).where(
        devices.c.device_id == device_id)).scalar() or 0


def set_credentials_version(connection: Connection, device_id: str, version: int) -> None:
    """Record a rotation."""
    connection.execute(update(devices).where(devices.c.device_id == device_id)
                       .values(credentials_version=version))
