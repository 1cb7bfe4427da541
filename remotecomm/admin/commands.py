"""``remotecomm-admin``: set up a server and provision units, users and devices.

These commands work on the server's own files (its config, CA and
database), so they run on the server host; they apply pending migrations
first, like the server does at start.
"""

from __future__ import annotations

import datetime
import os
import secrets
import shutil
import zoneinfo
from pathlib import Path

from twisted.internet.interfaces import IReactorTime

from remotecomm.accounts.passwords import PasswordRuleError, check_new_password, make_hasher
from remotecomm.clock import now_us
from remotecomm.command_line import EXIT_FAILED, EXIT_USAGE, CliError
from remotecomm.device.config import render_agent_config
from remotecomm.messages import text
from remotecomm.server.config import ServerConfig
from remotecomm.store import accounts as account_queries, devices as device_queries
from remotecomm.store.audit import append_audit
from remotecomm.store.engine import (SchemaTooNew, Store, current_revision, describe_database,
                                     migrate, open_database)
from remotecomm.tls import TLSSetupError, create_ca, issue_certificate
from remotecomm.xmpp.prosody import ProsodyError, ProsodyTools, settings_for, write_prosody_config


def _moment(clock: IReactorTime) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(clock.seconds(), datetime.timezone.utc)


def _open_store(config: ServerConfig) -> Store:
    engine = open_database(config.database)
    try:
        migrate(engine)
    except SchemaTooNew as e:
        raise CliError(f"{describe_database(config.database)}: {e}", EXIT_FAILED) from None
    return Store(engine, reactor=None)


def init(config: ServerConfig, clock: IReactorTime) -> list[str]:
    """Create the data folder, a development CA, the server certificate and the database.

    Existing files are kept, so running it again is harmless.
    """
    lines = []
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tls = config.tls
    if tls.ca_certificate.exists():
        lines.append(text("init-ca-kept", path=tls.ca_certificate))
    else:
        create_ca(tls.ca_certificate, tls.ca_key, "remotecomm development CA", _moment(clock))
        lines.append(text("init-ca", path=tls.ca_certificate))
    if tls.certificate.exists():
        lines.append(text("init-cert-kept", path=tls.certificate))
    else:
        try:
            issue_certificate(tls.ca_certificate, tls.ca_key, tls.certificate, tls.key,
                              tls.names, _moment(clock))
        except TLSSetupError as e:
            raise CliError(str(e)) from None
        lines.append(text("init-cert", path=tls.certificate, names=", ".join(tls.names)))
    if not config.relay.api_secret_file.exists():
        _write_secret(config.relay.api_secret_file, secrets.token_urlsafe(32))
        lines.append(text("init-relay-secret", path=config.relay.api_secret_file))
    store = _open_store(config)
    lines.append(text("init-db", path=describe_database(config.database),
                      revision=current_revision(store.engine)))
    store.engine.dispose()
    if config.xmpp.enabled:
        lines += _init_xmpp(config, clock)
    return lines


def _init_xmpp(config: ServerConfig, clock: IReactorTime) -> list[str]:
    """The component secret, Prosody's certificate and Prosody's generated config."""
    xmpp = config.xmpp
    lines = []
    if not xmpp.secret_file.exists():
        _write_secret(xmpp.secret_file, secrets.token_urlsafe(32))
        lines.append(text("init-secret", path=xmpp.secret_file))
    if not xmpp.certificate.exists():
        names = [xmpp.devices_domain, xmpp.component_domain, xmpp.public_host]
        issue_certificate(config.tls.ca_certificate, config.tls.ca_key, xmpp.certificate,
                          xmpp.key, list(dict.fromkeys(names)), _moment(clock))
        lines.append(text("init-cert", path=xmpp.certificate, names=", ".join(names)))
    secret = xmpp.secret_file.read_text().strip()
    path = write_prosody_config(settings_for(xmpp, secret))
    lines.append(text("init-prosody", path=path))
    return lines


def _write_secret(path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")


def _provision(config: ServerConfig, fn, *args) -> None:
    store = _open_store(config)
    try:
        store.run_sync(fn, *args)
    except (account_queries.AlreadyExists, account_queries.NotFound) as e:
        raise CliError(str(e), EXIT_FAILED) from None
    finally:
        store.engine.dispose()


def add_unit(config: ServerConfig, clock: IReactorTime, unit_id: str, name: str,
             time_zone: str) -> str:
    """Create a management unit with the time zone its reports are cut in."""
    try:
        zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CliError(f"unknown time zone {time_zone!r} (use an IANA name such as "
                       f"Europe/Berlin or Asia/Tokyo)", EXIT_USAGE) from None
    _provision(config, account_queries.insert_unit, unit_id, name, time_zone, now_us(clock))
    return text("unit-added", unit_id=unit_id, time_zone=time_zone)


def add_user(config: ServerConfig, clock: IReactorTime, user_id: str, display_name: str,
             password: str, unit_id: str | None, role: str,
             provider_admin: bool = False) -> str:
    """Create a user in a unit (or a provider admin, in none), with an argon2id hash of the
    password."""
    try:
        check_new_password(password)
    except PasswordRuleError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    password_hash = make_hasher(config.accounts.password_hash).hash(password)
    _provision(config, account_queries.insert_user, user_id, display_name, password_hash,
               unit_id, None if provider_admin else role, now_us(clock), provider_admin)
    if provider_admin:
        return text("provider-admin-added", user_id=user_id)
    return text("user-added", user_id=user_id, unit_id=unit_id, role=role)


def add_device(config: ServerConfig, clock: IReactorTime, device_id: str, unit_id: str,
               name: str, model: str, agent_dir: Path | None = None) -> list[str]:
    """Register a device in a unit; with XMPP on, create its account and its agent config.

    The agent config (with the device's XMPP password, mode 0600) and a copy
    of the CA go to ``agent_dir`` (default ``<data_dir>/devices/<device_id>``).
    """
    _provision(config, device_queries.insert_device, device_id, unit_id, name, model,
               now_us(clock))
    lines = [text("device-added", device_id=device_id, unit_id=unit_id)]
    if not config.xmpp.enabled:
        return lines
    xmpp = config.xmpp
    password = secrets.token_urlsafe(24)
    try:
        _prosody_tools(config).register(device_id, xmpp.devices_domain, password)
    except ProsodyError as e:
        _provision(config, device_queries.revoke_device, device_id, now_us(clock))
        raise CliError(f"creating the XMPP account of {device_id} failed, so the device was "
                       f"revoked again: {e}") from None
    folder = agent_dir or config.data_dir / "devices" / device_id
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(config.tls.ca_certificate, folder / "ca.pem")
    agent_config = folder / "device-agent.toml"
    _write_secret(agent_config, render_agent_config(
        device_id, f"tcp:{xmpp.public_host}:{xmpp.c2s_port}", xmpp.devices_domain, password,
        "ca.pem", [xmpp.component_domain], secrets.token_urlsafe(24)).rstrip("\n"))
    lines.append(text("agent-config-written", path=agent_config))
    return lines


def revoke_device(config: ServerConfig, clock: IReactorTime, device_id: str) -> list[str]:
    """Revoke a device: hidden from listings, its XMPP account removed, its connection closed;
    the manager ends its live sessions as ``revoked`` within seconds."""
    def revoke(connection) -> None:
        device_queries.revoke_device(connection, device_id, now_us(clock))
        append_audit(connection, now_us(clock), "device-revoked", actor="remotecomm-admin",
                     device_id=device_id)

    _provision(config, revoke)
    lines = [text("device-revoked", device_id=device_id)]
    if config.xmpp.enabled:
        tools = _prosody_tools(config)
        try:
            tools.delete(device_id, config.xmpp.devices_domain)
            closed = tools.close_sessions(device_id, config.xmpp.devices_domain)
        except ProsodyError as e:
            raise CliError(f"{device_id} is revoked, but removing its XMPP account failed: "
                           f"{e}") from None
        lines.append(text("xmpp-account-removed" if closed else "xmpp-account-removed-offline",
                          device_id=device_id))
    return lines


def set_user_disabled(config: ServerConfig, clock: IReactorTime, user_id: str,
                      disabled: bool) -> str:
    """Disable a user (no login, no API call; the manager ends their live sessions as
    ``revoked`` within seconds and the relay refuses their tokens) or enable them again."""
    def change(connection) -> None:
        account_queries.set_user_disabled(connection, user_id, disabled)
        append_audit(connection, now_us(clock), "user-disabled" if disabled else "user-enabled",
                     actor="remotecomm-admin", user_id=user_id)

    _provision(config, change)
    return text("user-disabled" if disabled else "user-enabled", user_id=user_id)


def _prosody_tools(config: ServerConfig) -> ProsodyTools:
    return ProsodyTools(config.xmpp.prosody_dir / "prosody.cfg.lua", config.xmpp.prosodyctl)
