"""``remotecomm admin …`` over the admin API, and ``remotecomm passwd``: running the service from
anywhere with an admin's login.

Units: ``units``, ``unit-add UNIT --name N --time-zone Z``, ``unit-set [--name]
[--time-zone]`` (the current unit).  Users of the current unit: ``users``,
``user USER``, ``user-add USER --role R [--name N] [--password-stdin]`` (without
a password the new user gets a one-time token, printed once with the command
that redeems it), ``user-role USER technician|unit-admin|none``,
``user-disable USER``, ``user-enable USER``, ``user-password USER
[--password-stdin]``, ``provider-admin USER on|off``.  The audit log: ``audit
[--kind K] [--actor A] [--from] [--to] [--limit N] [--csv FILE]``.  Devices of
the current unit: ``device-add DEVICE [--name] [--model] [--agent-dir DIR]``
(writes the agent's config, shown this once, and the CA), ``device-move
DEVICE UNIT``, ``device-revoke DEVICE``, ``device-rotate DEVICE``.  Relay nodes
(provider admins): ``relays``, ``relay drain NODE``, ``relay resume NODE``.

What only the server host can do -- ``init``, the first provider admin, units,
users and devices before anyone can log in -- stays with ``remotecomm-admin``
(``remotecomm admin init|add-unit|add-user|add-device|revoke-device|
disable-user|enable-user`` hands over to it).  Permissions are the server's:
this command only asks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlencode

from remotecomm.command_line import EXIT_USAGE, CliError, identifier, read_password, table
from remotecomm.identifiers import DEVICE_ID, RELAY_NODE, UNIT_ID, USER_ID
from remotecomm.messages import text

# The subcommands that run on the server host (remotecomm-admin), not over the API.
LOCAL_COMMANDS = ("init", "add-unit", "add-user", "add-device", "revoke-device",
                  "disable-user", "enable-user")
API_COMMANDS = ("units", "unit-add", "unit-set", "users", "user", "user-add", "user-role",
                "user-disable", "user-enable", "user-password", "provider-admin", "audit",
                "device-add", "device-move", "device-revoke", "device-rotate", "relays", "relay")


def add_parsers(commands) -> None:
    """``admin`` (over the API) and ``passwd`` on the command's sub-parsers."""
    admin = commands.add_parser("admin", help="run the service: units, users, audit (admins)")
    actions = admin.add_subparsers(dest="admin_command", required=True, metavar="ADMIN_COMMAND")
    actions.add_parser("units", help="the units you administer")
    unit_add = actions.add_parser("unit-add", help="create a unit (provider admins)")
    unit_add.add_argument("new_unit", type=identifier(UNIT_ID, "unit ID"))
    unit_add.add_argument("--name", required=True)
    unit_add.add_argument("--time-zone", required=True, help="IANA name, e.g. Europe/Berlin")
    unit_set = actions.add_parser("unit-set", help="rename the current unit or set its zone")
    unit_set.add_argument("--name")
    unit_set.add_argument("--time-zone")
    actions.add_parser("users", help="the current unit's users")
    for name, helptext in (("user", "one user"), ("user-disable", "disable a user: their "
                                                                  "tokens and sessions end"),
                           ("user-enable", "enable a user again")):
        command = actions.add_parser(name, help=helptext)
        command.add_argument("user_id", type=identifier(USER_ID, "user ID"))
    user_add = actions.add_parser("user-add", help="create a user in the current unit")
    user_add.add_argument("user_id", type=identifier(USER_ID, "user ID (lower case)"))
    user_add.add_argument("--role", choices=("technician", "unit-admin"), required=True)
    user_add.add_argument("--name", help="display name (default: the user ID)")
    user_add.add_argument("--password-stdin", action="store_true",
                          help="set a password from standard input (else: a one-time token)")
    role = actions.add_parser("user-role", help="a user's role in the current unit")
    role.add_argument("user_id", type=identifier(USER_ID, "user ID"))
    role.add_argument("role", choices=("technician", "unit-admin", "none"))
    reset = actions.add_parser("user-password", help="reset a user's password")
    reset.add_argument("user_id", type=identifier(USER_ID, "user ID"))
    reset.add_argument("--password-stdin", action="store_true",
                       help="the new password from standard input (else: a one-time token)")
    provider = actions.add_parser("provider-admin", help="make a user a provider admin or not")
    provider.add_argument("user_id", type=identifier(USER_ID, "user ID"))
    provider.add_argument("state", choices=("on", "off"))
    device_add = actions.add_parser("device-add", help="register a device in the current unit "
                                                       "and write its agent config")
    device_add.add_argument("device_id", type=identifier(DEVICE_ID, "device ID (lower case)"))
    device_add.add_argument("--name")
    device_add.add_argument("--model")
    device_add.add_argument("--agent-dir", metavar="DIR",
                            help="where to write device-agent.toml and ca.pem (default: "
                                 "./DEVICE)")
    device_move = actions.add_parser("device-move", help="move a device to another unit")
    device_move.add_argument("device_id", type=identifier(DEVICE_ID, "device ID"))
    device_move.add_argument("to_unit", type=identifier(UNIT_ID, "unit ID"))
    device_revoke = actions.add_parser("device-revoke", help="revoke a device: its account "
                                                             "goes, its sessions end")
    device_revoke.add_argument("device_id", type=identifier(DEVICE_ID, "device ID"))
    device_rotate = actions.add_parser("device-rotate", help="new XMPP credentials for a "
                                                             "device (it must be online)")
    device_rotate.add_argument("device_id", type=identifier(DEVICE_ID, "device ID"))
    actions.add_parser("relays", help="the relay nodes: state, sessions (provider admins)")
    relay = actions.add_parser("relay", help="drain a relay node (it takes no new sessions) "
                                             "or resume it (provider admins)")
    relay.add_argument("relay_action", choices=("drain", "resume"))
    relay.add_argument("node", type=identifier(RELAY_NODE, "relay node"))
    audit = actions.add_parser("audit", help="the current unit's audit log")
    audit.add_argument("--kind")
    audit.add_argument("--actor")
    audit.add_argument("--from", dest="from_", metavar="FROM", help="ISO 8601 instant")
    audit.add_argument("--to", help="ISO 8601 instant")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--csv", metavar="FILE", help="write the log as CSV (up to 10,000)")
    for parser in (admin,) + tuple(actions.choices.values()):
        parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    passwd = commands.add_parser("passwd", help="change your password, or set it with the "
                                                "one-time token an admin gave you")
    passwd.add_argument("--token", help="the one-time token (with --user; no login needed)")
    passwd.add_argument("--user", type=str.lower, help="your user ID (with --token)")
    passwd.add_argument("--password-stdin", action="store_true",
                        help="read the password(s) from standard input, one per line")


def _user_lines(user: dict) -> list[str]:
    units = ", ".join(f"{m.get('unit_id')} ({m.get('role')})"
                      for m in user.get("memberships") or []) or "none"
    state = "disabled" if user.get("disabled") else "active"
    provider = ", provider admin" if user.get("provider_admin") else ""
    return [f"{user.get('user_id')} ({user.get('display_name')}): {state}{provider}; "
            f"units: {units}"]


def _token_lines(user_id: str, token: str | None) -> list[str]:
    if token is None:
        return []
    return [text("set-password-token", user_id=user_id, token=token)]


async def admin(client, args) -> list[str]:
    """Run one ``remotecomm admin`` subcommand over the API."""
    command = args.admin_command
    answer: dict
    lines: list[str] = []
    if command == "units":
        answer = await client.get("/api/v1/units")
        rows = [("UNIT", "NAME", "TIME ZONE", "USERS", "DEVICES")]
        rows += [(u.get("unit_id"), u.get("name"), u.get("time_zone"), str(u.get("users")),
                  str(u.get("devices"))) for u in answer.get("units") or []]
        lines = table(rows)
    elif command == "relays":
        answer = await client.get("/api/v1/relays")
        rows = [("NODE", "STATE", "ALIVE", "SESSIONS", "CAPACITY", "LOAD", "LAST HEARD", "URL")]
        rows += [(r.get("node"),
                  "drained" if r.get("drained") else r.get("state"),
                  "yes" if r.get("alive") else "no",
                  f"{r.get('placed_sessions')} ({r.get('open_sessions')} connected)",
                  str(r.get("capacity") or "-"),
                  f"{r['load']:.0%}" if isinstance(r.get("load"), (int, float)) else "-",
                  str(r.get("last_heartbeat_at", "")),
                  r.get("public_url")) for r in answer.get("relays") or []]
        lines = table(rows)
    elif command == "relay":
        answer = await client.post(f"/api/v1/relays/{args.node}/{args.relay_action}", {})
        lines = [text("relay-draining" if args.relay_action == "drain" else "relay-resumed",
                      node=answer.get("node"), count=answer.get("open_sessions"))]
    elif command == "unit-add":
        answer = await client.post("/api/v1/units", {"unit_id": args.new_unit,
                                                     "name": args.name,
                                                     "time_zone": args.time_zone})
        lines = [text("unit-created", unit_id=answer.get("unit_id"))]
    elif command == "unit-set":
        body = {name: value for name, value in (("name", args.name),
                                                ("time_zone", args.time_zone)) if value}
        if not body:
            raise CliError("say what to change: --name and/or --time-zone", EXIT_USAGE)
        unit = client.unit_id or ""
        answer = await client.request("PATCH", f"/api/v1/units/{unit}", body) if unit else \
            _no_unit()
        lines = [f"{answer.get('unit_id')}: {answer.get('name')}, {answer.get('time_zone')}"]
    elif command == "users":
        answer = await client.get("/api/v1/users")
        rows = [("USER", "NAME", "STATE", "UNITS")]
        for user in answer.get("users") or []:
            rows.append((user.get("user_id"), user.get("display_name"),
                         "disabled" if user.get("disabled") else "active",
                         ", ".join(f"{m.get('unit_id')}:{m.get('role')}"
                                   for m in user.get("memberships") or [])))
        lines = table(rows)
    elif command == "user":
        answer = await client.get(f"/api/v1/users/{args.user_id}")
        lines = _user_lines(answer)
    elif command == "user-add":
        body = {"user_id": args.user_id, "role": args.role,
                "display_name": args.name or args.user_id}
        if args.password_stdin:
            body["password"] = read_password(True, "", False)
        answer = await client.post("/api/v1/users", body)
        lines = _user_lines(answer) + _token_lines(args.user_id,
                                                   answer.get("set_password_token"))
    elif command == "user-role":
        unit = client.unit_id or _no_unit()
        path = f"/api/v1/units/{unit}/users/{args.user_id}"
        answer = (await client.delete(path) if args.role == "none"
                  else await client.request("PUT", path, {"role": args.role}))
        lines = _user_lines(answer)
    elif command in ("user-disable", "user-enable"):
        answer = await client.post(f"/api/v1/users/{args.user_id}/{command[5:]}", {})
        lines = _user_lines(answer)
    elif command == "user-password":
        body = {"password": read_password(True, "", False)} if args.password_stdin else {}
        answer = await client.post(f"/api/v1/users/{args.user_id}/password", body)
        lines = [text("password-reset", user_id=args.user_id)] + _token_lines(
            args.user_id, answer.get("set_password_token"))
    elif command == "provider-admin":
        answer = await client.request("PUT", f"/api/v1/users/{args.user_id}/provider-admin",
                                      {"provider_admin": args.state == "on"})
        lines = _user_lines(answer)
    elif command == "device-add":
        body = {"device_id": args.device_id, "name": args.name or args.device_id}
        if args.model:
            body["model"] = args.model
        answer = await client.post("/api/v1/devices", body)
        lines = [text("device-registered", device_id=args.device_id)]
        if answer.get("agent_config"):
            folder = Path(args.agent_dir or args.device_id)
            write_agent_files(folder, str(answer["agent_config"]),
                              str(answer.get("ca_certificate") or ""))
            lines.append(text("agent-config-saved", path=folder / "device-agent.toml"))
            answer = {k: v for k, v in answer.items() if k != "agent_config"}  # no password
    elif command == "device-move":
        answer = await client.post(f"/api/v1/devices/{args.device_id}/move",
                                   {"unit_id": args.to_unit})
        lines = [text("device-moved", device_id=args.device_id, unit_id=args.to_unit)]
    elif command == "device-revoke":
        answer = await client.delete(f"/api/v1/devices/{args.device_id}")
        lines = [text("device-revoked-api", device_id=args.device_id,
                      account=answer.get("xmpp_account", "?"))]
    elif command == "device-rotate":
        answer = await client.post(f"/api/v1/devices/{args.device_id}/rotate-credentials", {})
        lines = [text("device-rotated", device_id=args.device_id,
                      version=answer.get("credentials_version", "?"))]
    else:
        return await _audit(client, args)
    return [json.dumps(answer, indent=2)] if args.json else lines


def write_agent_files(folder: Path, agent_config: str, ca_certificate: str) -> None:
    """The agent's config (it holds the device's XMPP password: owner-only) and the CA."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / "device-agent.toml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(agent_config)
        (folder / "ca.pem").write_text(ca_certificate)
    except OSError as e:
        raise CliError(text("cannot-write", path=folder, reason=e.strerror or str(e)),
                       EXIT_USAGE) from None


def _no_unit():
    raise CliError(text("no-unit-chosen"), EXIT_USAGE)


async def _audit(client, args) -> list[str]:
    query = {name: value for name, value in (("kind", args.kind), ("actor", args.actor),
                                             ("from", args.from_), ("to", args.to))
             if value}
    if args.csv:
        target = Path(args.csv)
        partial = target.with_name(target.name + ".part")
        try:
            with open(partial, "wb") as file:
                await client.download("/api/v1/audit.csv" + (f"?{urlencode(query)}"
                                                             if query else ""), file.write)
            os.replace(partial, target)
        except OSError as e:
            partial.unlink(missing_ok=True)
            raise CliError(text("cannot-write", path=target, reason=e.strerror or str(e)),
                           EXIT_USAGE) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return [text("audit-written", path=target)]
    query["limit"] = str(args.limit)
    answer = await client.get("/api/v1/audit?" + urlencode(query))
    if args.json:
        return [json.dumps(answer, indent=2)]
    rows = [("AT (UTC)", "KIND", "ACTOR", "FROM", "DETAIL")]
    for record in answer.get("records") or []:
        rows.append((str(record.get("at", "")).replace("T", " ").rstrip("Z"),
                     str(record.get("kind")), str(record.get("actor") or ""),
                     str(record.get("source_address") or ""),
                     json.dumps(record.get("detail"), sort_keys=True)[:80]))
    return table(rows)


async def passwd(client_for, args) -> list[str]:
    """Change one's own password (logged in), or set it with a one-time token."""
    if args.token is not None:
        if not args.user:
            raise CliError("give your user ID with --user", EXIT_USAGE)
        new = read_password(args.password_stdin, text("new-password-prompt"), True)
        await client_for(logged_in=False).post("/api/v1/password/set", {
            "user_id": args.user, "token": args.token, "new_password": new})
        return [text("password-set", user_id=args.user)]
    current = read_password(args.password_stdin, text("current-password-prompt"), False)
    new = read_password(args.password_stdin, text("new-password-prompt"), True)
    await client_for(logged_in=True).post("/api/v1/password", {
        "current_password": current, "new_password": new})
    return [text("password-changed")]
