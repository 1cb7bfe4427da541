"""The ``remotecomm`` console script: the technician's command, or ``admin`` for the server.

``remotecomm admin …`` is ``remotecomm-admin …`` (server hosts, with
``remotecomm[server]``); everything else is :mod:`remotecomm.terminal`.  The
two are separate programs: this dispatcher loads only the one asked for, so
the technician's command never imports server code.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``remotecomm`` (and ``python -m remotecomm``)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["admin"]:
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
