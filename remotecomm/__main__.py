"""The ``remotecomm`` console script: the technician's (and admin's) command, or the server
host's ``remotecomm-admin``.

``remotecomm admin init|add-unit|add-user|add-device|revoke-device|disable-user|
enable-user …`` and any ``remotecomm admin --config …`` are ``remotecomm-admin
…`` (server hosts, with ``remotecomm[server]``: bootstrapping); every other
``remotecomm admin …`` (units, users, audit) and everything else is
:mod:`remotecomm.terminal`, over the API.  The two are separate programs:
this dispatcher loads only the one asked for, so the technician's command
never imports server code.
"""

from __future__ import annotations

import os
import sys

# remotecomm-admin's own commands (kept in step with remotecomm.terminal.admin.LOCAL_COMMANDS,
# which this module does not import: it loads nothing before it knows which program runs).
_LOCAL = ("init", "add-unit", "add-user", "add-device", "revoke-device", "disable-user",
          "enable-user")


def _is_local(argv: list[str]) -> bool:
    words = [word for word in argv if not word.startswith("-")]
    return any(word.startswith("--config") for word in argv) or \
        (bool(words) and words[0] in _LOCAL) or not argv or argv[0] in ("-h", "--help")


# PYTHON_ARGCOMPLETE_OK: this command answers bash's completion requests itself.
def main(argv: list[str] | None = None) -> None:
    """Entry point of ``remotecomm`` (and ``python -m remotecomm``)."""
    argv = sys.argv[1:] if argv is None else argv
    if os.environ.get("_ARGCOMPLETE"):  # bash asks for completions (argcomplete): answer, exit
        import argcomplete

        from remotecomm.terminal.main import build_parser
        argcomplete.autocomplete(build_parser())
    if argv[:1] == ["admin"] and _is_local(argv[1:]):
        try:
            from remotecomm.admin.main import main as admin_main
        except ImportError as e:
            sys.stderr.write(f"remotecomm: the admin commands run on the server host and need "
                             f"remotecomm[server] ({e.name or e} is not installed)\n")
            raise SystemExit(2) from None
        admin_main(argv[1:], prog="remotecomm admin")
        return
    from remotecomm.terminal.main import main as terminal_main
    terminal_main(argv)


if __name__ == "__main__":
    main()
