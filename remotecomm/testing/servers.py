"""A real ``twistd remotecomm`` for end-to-end tests: config, provisioning, start, CLI.

Uses the default configuration (TLS on, modern profile) except for the
port, the data folder and cheap password-hash costs.
"""

from __future__ import annotations

from pathlib import Path

from remotecomm.cli import admin
from remotecomm.server.config import load_server_config
from remotecomm.testing.processes import ServerProcess, free_port, run_command

PASSWORD = "correct horse battery"


class ServerSetup:
    """A data folder with a server config, CA and database, and the commands around it."""

    def __init__(self, reactor, folder: Path):
        self.reactor = reactor
        self.folder = folder.absolute()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = self.folder / "remotecomm.toml"
        self.config.write_text(
            "[server]\n"
            f"data_dir = '{self.folder / 'data'}'\n"
            f"listen = 'tcp:{self.port}:interface=127.0.0.1'\n"
            f"public_url = 'https://127.0.0.1:{self.port}'\n"
            "[accounts]\n"
            "argon2_time_cost = 1\n"
            "argon2_memory_kib = 1024\n")
        self.ca = self.folder / "data" / "tls" / "ca.pem"
        self.url = f"https://127.0.0.1:{self.port}"
        self.terminal_home = self.folder / "terminal"
        self.server: ServerProcess | None = None

    async def admin(self, *args: str, stdin: bytes | None = None) -> tuple[int, str]:
        """Run ``remotecomm admin --config … ARGS``."""
        return await run_command(self.reactor, ["remotecomm", "admin", "--config",
                                                str(self.config), *args], stdin=stdin)

    def provision(self, units: dict[str, dict[str, list[str]]]) -> None:
        """``init``, then per unit its users and devices: ``{unit: {"users": […], "devices": […]}}``.

        Runs the ``remotecomm admin`` functions in this process (the CLI's own
        argument handling is tested separately), which saves a Python start per step.
        """
        config = load_server_config(self.config)
        admin.init(config, self.reactor)
        for unit, members in units.items():
            admin.add_unit(config, self.reactor, unit, unit.title(), "Europe/Berlin")
            for user in members.get("users", []):
                admin.add_user(config, self.reactor, user, user.title(), PASSWORD, unit,
                               "technician")
            for device in members.get("devices", []):
                admin.add_device(config, self.reactor, device, unit, device, "MFP 9000")

    async def start(self, env: dict[str, str] | None = None) -> ServerProcess:
        """Start ``twistd remotecomm`` and wait until ``/readyz`` answers."""
        self.server = ServerProcess(self.reactor, "remotecomm", ["--config", str(self.config)],
                                    cwd=self.folder, env=env)
        await self.server.wait_ready(self.url + "/readyz", self.ca)
        return self.server

    async def stop(self) -> int | None:
        """Stop the server if it runs; its exit code."""
        if self.server is None:
            return None
        return await self.server.stop()

    async def cli(self, *args: str, stdin: bytes | None = None,
                  home: Path | None = None) -> tuple[int, str]:
        """Run the terminal CLI against this server."""
        env = {"REMOTECOMM_HOME": str(home or self.terminal_home),
               "REMOTECOMM_SERVER": self.url, "REMOTECOMM_CA": str(self.ca)}
        return await run_command(self.reactor, ["remotecomm", *args], env=env, stdin=stdin)
