"""``remotecomm-admin`` (also ``remotecomm admin``): the server host's command.

::

    remotecomm-admin --config etc/remotecomm.toml init
    remotecomm-admin --config … add-unit UNIT --name NAME --time-zone ZONE
    remotecomm-admin --config … add-user USER --unit UNIT [--role ROLE] [--password-stdin]
    remotecomm-admin --config … add-device DEVICE --unit UNIT [--name NAME] [--model MODEL]
    remotecomm-admin --config … revoke-device DEVICE
    remotecomm-admin --config … disable-user USER | enable-user USER

These work on the server's own files (config, CA, database), so they run on
the server host and need ``remotecomm[server]``.  Every failure is one line on
stderr and an exit code from :mod:`remotecomm.command_line`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from remotecomm import __version__
from remotecomm.admin import commands
from remotecomm.command_line import (EXIT_USAGE, CliError, identifier, printable_text,
                                     read_password, report)
from remotecomm.config import ConfigError
from remotecomm.identifiers import DEVICE_ID, UNIT_ID, USER_ID
from remotecomm.messages import text
from remotecomm.store.schema import ROLES


def build_parser(prog: str = "remotecomm-admin") -> argparse.ArgumentParser:
    """The argument parser of the admin command."""
    parser = argparse.ArgumentParser(prog=prog, description="Server administration (on the "
                                                            "server host).")
    parser.add_argument("--version", action="version", version=f"remotecomm {__version__}")
    parser.add_argument("--config", default=os.environ.get("REMOTECOMM_CONFIG"),
                        help="the server's config file (or REMOTECOMM_CONFIG)")
    admin_commands = parser.add_subparsers(dest="admin_command", required=True,
                                           metavar="ADMIN_COMMAND")
    admin_commands.add_parser("init", help="create the data folder, dev CA, certificate, database")
    unit = admin_commands.add_parser("add-unit", help="create a management unit")
    unit.add_argument("unit_id", type=identifier(UNIT_ID, "unit ID"))
    unit.add_argument("--name", type=printable_text(200), required=True)
    unit.add_argument("--time-zone", required=True, help="IANA time zone, e.g. Europe/Berlin")
    user = admin_commands.add_parser("add-user", help="create a user in a unit, or a provider "
                                                      "admin (every unit)")
    user.add_argument("user_id", type=identifier(USER_ID, "user ID (lower case)"))
    user.add_argument("--unit", type=identifier(UNIT_ID, "unit ID"))
    user.add_argument("--provider-admin", action="store_true",
                      help="administers every unit (the first one is made here; more through "
                           "the admin API)")
    user.add_argument("--role", choices=ROLES, default="technician")
    user.add_argument("--name", type=printable_text(200),
                      help="display name (default: the user ID)")
    user.add_argument("--password-stdin", action="store_true",
                      help="read the password from the first line of standard input")
    device = admin_commands.add_parser("add-device", help="register a device in a unit")
    device.add_argument("device_id", type=identifier(DEVICE_ID, "device ID (lower case)"))
    device.add_argument("--unit", type=identifier(UNIT_ID, "unit ID"), required=True)
    device.add_argument("--name", type=printable_text(200),
                        help="display name (default: device ID)")
    device.add_argument("--model", type=printable_text(200), default="unknown model")
    device.add_argument("--agent-dir", help="where to write the device's agent config "
                        "(default: DATA_DIR/devices/DEVICE)")
    revoke = admin_commands.add_parser("revoke-device",
                                       help="revoke a device and close its connection")
    revoke.add_argument("device_id", type=identifier(DEVICE_ID, "device ID (lower case)"))
    for name, what in (("disable-user", "disable a user and end their sessions"),
                       ("enable-user", "enable a disabled user again")):
        toggle = admin_commands.add_parser(name, help=what)
        toggle.add_argument("user_id", type=identifier(USER_ID, "user ID (lower case)"))
    return parser


def run(args: argparse.Namespace) -> list[str]:
    """Carry out one admin command; the lines to print."""
    from twisted.internet import reactor

    from remotecomm.server.config import load_server_config

    if not args.config:
        raise CliError("admin commands need --config (or REMOTECOMM_CONFIG)", EXIT_USAGE)
    try:
        config = load_server_config(args.config)
    except ConfigError as e:
        raise CliError(str(e), EXIT_USAGE) from None
    if args.admin_command == "init":
        return commands.init(config, reactor)
    if args.admin_command == "add-unit":
        return [commands.add_unit(config, reactor, args.unit_id, args.name, args.time_zone)]
    if args.admin_command == "add-user":
        if (args.unit is None) != args.provider_admin:
            raise CliError(text("add-user-usage"), EXIT_USAGE)
        password = read_password(args.password_stdin, text("password-prompt",
                                                           user_id=args.user_id), True)
        return [commands.add_user(config, reactor, args.user_id, args.name or args.user_id,
                                  password, args.unit, args.role, args.provider_admin)]
    if args.admin_command == "revoke-device":
        return commands.revoke_device(config, reactor, args.device_id)
    if args.admin_command in ("disable-user", "enable-user"):
        return [commands.set_user_disabled(config, reactor, args.user_id,
                                           args.admin_command == "disable-user")]
    return commands.add_device(config, reactor, args.device_id, args.unit,
                               args.name or args.device_id, args.model,
                               Path(args.agent_dir).absolute() if args.agent_dir else None)


def main(argv: list[str] | None = None, prog: str = "remotecomm-admin") -> None:
    """Entry point of the ``remotecomm-admin`` console script."""
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    report(prog, lambda: run(args))


if __name__ == "__main__":
    main(sys.argv[1:])
