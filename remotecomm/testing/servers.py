"""A real ``twistd remotecomm`` with its own Prosody, for end-to-end tests.

Uses the default configuration (TLS on, modern profile, XMPP on) except for
free ports, the data folder and cheap password-hash costs.  Device agents
run as ``twistd device-agent`` with the configs ``remotecomm admin
add-device`` wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

from argon2 import PasswordHasher

from remotecomm.admin import commands as admin
from remotecomm.device.config import load_device_config
from remotecomm.server.config import ServerConfig, load_server_config
from remotecomm.simulator.config import render_simulator_config
from remotecomm.testing.http import call_api, http_client
from remotecomm.testing.processes import ChildProcess, ServerProcess, free_port, run_command, sleep
from remotecomm.unix_sockets import remove_private_socket_folder
from remotecomm.xmpp.prosody import ProsodyProcess, admin_socket_path, settings_for

PASSWORD = "correct horse battery"
FIRST_RELAY = "relay-a"


class ServerSetup:
    """A data folder with a server config, CA, database and Prosody config, and its processes."""

    def __init__(self, reactor, folder: Path, extra_config: str = "", *,
                 ports: dict[str, int] | None = None, cheap_hashing: bool = True,
                 separate_relay: bool = False, tls: bool = True, lost_after: str = "3s"):
        self.reactor = reactor
        self.folder = folder.absolute()
        self.folder.mkdir(parents=True, exist_ok=True)
        ports = ports or {}
        self.port = ports.get("https") or free_port()
        self.c2s_port = ports.get("c2s") or free_port()
        self.component_port = ports.get("component") or free_port()
        self.metrics_port = ports.get("metrics") or free_port()
        self.separate_relay = separate_relay
        self.tls = tls
        self.relay_port = free_port() if separate_relay else self.port
        self.relay_metrics_port = free_port() if separate_relay else self.metrics_port
        self.relay: ServerProcess | None = None  # the first relay-only process, relay-a
        # Relay-only processes by node name, and their (WebSocket, metrics) ports.
        self.relays: dict[str, ServerProcess] = {}
        self.relay_ports: dict[str, tuple[int, int]] = {
            FIRST_RELAY: (self.relay_port, self.relay_metrics_port)}
        self._relay_settings: dict[str, str] = {}
        # Split roles: the relay heartbeats every 0.5 s and the manager calls it lost after
        # 3 s of silence (by default), so that tests of a lost relay stay short.
        relay_timing = f"[relay]\nlost_after = '{lost_after}'\n"
        self.config = self.folder / "remotecomm.toml"
        self.cheap_hashing = cheap_hashing
        self.config.write_text(
            "[server]\n"
            f"data_dir = '{self.folder / 'data'}'\n"
            f"listen = 'tcp:{self.port}:interface=127.0.0.1'\n"
            f"public_url = '{'https' if tls else 'http'}://127.0.0.1:{self.port}'\n"
            + ("" if tls else "[tls]\nenabled = false\n")
            + ("[accounts]\nargon2_time_cost = 1\nargon2_memory_kib = 1024\n"
               if cheap_hashing else "")
            + "[xmpp]\n"
            f"c2s_port = {self.c2s_port}\n"
            f"component_port = {self.component_port}\n"
            "[metrics]\n"
            f"listen = 'tcp:{self.metrics_port}:interface=127.0.0.1'\n"
            + (relay_timing if separate_relay else "")
            + extra_config)
        self.ca = self.folder / "data" / "tls" / "ca.pem"
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.terminal_home = self.folder / "terminal"
        self.server: ServerProcess | None = None
        self.prosody: ProsodyProcess | None = None
        self.agents: dict[str, ServerProcess] = {}
        self.simulators: dict[str, ServerProcess] = {}
        self.clis: list[ChildProcess] = []

    def server_config(self) -> ServerConfig:
        """The parsed server config."""
        return load_server_config(self.config)

    async def admin(self, *args: str, stdin: bytes | None = None) -> tuple[int, str]:
        """Run ``remotecomm admin --config … ARGS``."""
        return await run_command(self.reactor, ["remotecomm", "admin", "--config",
                                                str(self.config), *args], stdin=stdin)

    def provision(self, units: dict[str, dict[str, list[str]]],
                  password: str = PASSWORD) -> None:
        """``init``, then per unit its users and devices: ``{unit: {"users": […], "devices": […]}}``
        (a user ``"name:unit-admin"`` gets that role; technician otherwise).

        Runs the ``remotecomm admin`` functions in this process (the CLI's own
        argument handling is tested separately), which saves a Python start per step.
        """
        config = self.server_config()
        admin.init(config, self.reactor)
        for unit, members in units.items():
            admin.add_unit(config, self.reactor, unit, unit.title(), "Europe/Berlin")
            for user in members.get("users", []):
                user, _, role = user.partition(":")  # "adam:unit-admin"
                admin.add_user(config, self.reactor, user, user.title(), password, unit,
                               role or "technician")
            for device in members.get("devices", []):
                admin.add_device(config, self.reactor, device, unit, device, "MFP 9000")

    def agent_dir(self, device_id: str) -> Path:
        """Where ``add-device`` wrote the device's agent config."""
        return self.folder / "data" / "devices" / device_id

    async def start_prosody(self) -> ProsodyProcess:
        """Start this setup's Prosody and wait until its ports accept connections."""
        config = self.server_config()
        secret = config.xmpp.secret_file.read_text().strip()
        self.prosody = ProsodyProcess(self.reactor, settings_for(config.xmpp, secret))
        self.prosody.start()
        await self.prosody.wait_ready()
        return self.prosody

    async def stop_prosody(self) -> None:
        """Stop Prosody (devices and the component lose their streams)."""
        if self.prosody is not None:
            await self.prosody.stop()

    async def start(self, env: dict[str, str] | None = None) -> ServerProcess:
        """Start Prosody (once) and ``twistd remotecomm``; wait until ``/readyz`` answers."""
        if self.prosody is None:
            await self.start_prosody()
        role = ["--role", "manager"] if self.separate_relay else []
        self.server = ServerProcess(self.reactor, "remotecomm",
                                    ["--config", str(self.config), *role],
                                    cwd=self.folder, env=env,
                                    log_path=self.folder / "server.log")
        await self.server.wait_ready(self.url + "/readyz", self.ca)
        return self.server

    def relay_config(self, node: str = FIRST_RELAY, settings: str | None = None) -> Path:
        """The config of a relay-only process named ``node`` (its own data folder and
        database), which calls this setup's manager over HTTPS with the shared API secret;
        ``settings``: more lines of its ``[relay]`` section (default: those it had last)."""
        if node not in self.relay_ports:
            self.relay_ports[node] = (free_port(), free_port())
        if settings is None:
            settings = self._relay_settings.get(node, "")
        self._relay_settings[node] = settings
        port, metrics_port = self.relay_ports[node]
        first = node == FIRST_RELAY
        path = self.folder / ("relay.toml" if first else f"{node}.toml")
        data = self.folder / "data"
        scheme = "https" if self.tls else "http"
        path.write_text(
            "[server]\n"
            f"data_dir = '{self.folder / ('relay-data' if first else f'{node}-data')}'\n"
            f"listen = 'tcp:{port}:interface=127.0.0.1'\n"
            f"public_url = '{scheme}://127.0.0.1:{port}'\n"
            "[tls]\n"
            + (f"certificate = '{data / 'tls' / 'server.pem'}'\n"
               f"key = '{data / 'tls' / 'server.key'}'\n"
               f"ca_certificate = '{self.ca}'\n" if self.tls else "enabled = false\n")
            + "[xmpp]\nenabled = false\n"
            "[relay]\n"
            f"node = '{node}'\n"
            "heartbeat_interval = '0.5s'\n"
            f"manager_url = '{self.url}'\n"
            f"api_secret_file = '{data / 'relay-api.secret'}'\n"
            + settings
            + "[metrics]\n"
            f"listen = 'tcp:{metrics_port}:interface=127.0.0.1'\n")
        return path

    def relay_url(self, node: str = FIRST_RELAY) -> str:
        """Where a relay-only process answers (its ``/readyz``, its WebSocket)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.relay_ports[node][0]}"

    async def start_relay(self, node: str = FIRST_RELAY,
                          settings: str | None = None) -> ServerProcess:
        """Start ``twistd remotecomm --role relay`` as ``node``; wait until its ``/readyz``
        answers."""
        config = self.relay_config(node, settings)
        relay = ServerProcess(self.reactor, "remotecomm",
                              ["--config", str(config), "--role", "relay"],
                              cwd=self.folder,
                              log_path=self.folder / ("relay.log" if node == FIRST_RELAY
                                                      else f"{node}.log"))
        self.relays[node] = relay
        if node == FIRST_RELAY:
            self.relay = relay
        await relay.wait_ready(self.relay_url(node) + "/readyz", self.ca if self.tls else None)
        return relay

    def start_agent(self, device_id: str, config: Path | None = None) -> ServerProcess:
        """Start ``twistd device-agent`` for a provisioned device."""
        folder = self.agent_dir(device_id)
        agent = ServerProcess(self.reactor, "device-agent",
                              ["--config", str(config or folder / "device-agent.toml")],
                              cwd=folder, log_path=self.folder / f"agent-{device_id}.log")
        self.agents[device_id] = agent
        return agent

    def configure_agent(self, device_id: str, apps: dict[str, str] | None = None,
                        test_approver: str | None = None) -> Path:
        """Fill in the device's generated agent config: apps, optionally a test approver."""
        path = self.agent_dir(device_id) / "device-agent.toml"
        text = path.read_text()
        lines = "".join(f'{app} = "{url}"\n' for app, url in (apps or {}).items())
        text = text.replace("[apps]\n", "[apps]\n" + lines, 1)
        if test_approver is not None:
            text = text.replace("[approval]\n", f'[approval]\ntest_approver = "{test_approver}"\n')
        path.write_text(text)
        return path

    def start_simulator(self, device_id: str, operators: dict[str, str],
                        port: int | None = None,
                        app_ports: dict[str, int] | None = None) -> tuple[ServerProcess, str]:
        """Start ``twistd mfp-simulator`` wired to the device's agent; it and its panel URL.

        ``app_ports`` places its ``web-server`` and ``remote-panel`` apps (default: free
        ports); :func:`app_urls` gives the agent's ``[apps]`` for them.
        """
        agent_config = load_device_config(self.agent_dir(device_id) / "device-agent.toml")
        port = port or free_port()
        app_ports = app_ports or {"web-server": free_port(), "remote-panel": free_port()}
        # Tests hash cheaply; the demo as a real device would (argon2id's defaults).
        hasher = (PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
                  if self.cheap_hashing else PasswordHasher())
        path = self.agent_dir(device_id) / "mfp-simulator.toml"
        path.write_text(render_simulator_config(
            f"{device_id} (simulated)", "MFP 9000", port, agent_config.panel.socket,
            agent_config.panel.secret,
            {name: hasher.hash(password) for name, password in operators.items()},
            app_ports["web-server"], app_ports["remote-panel"]))
        simulator = ServerProcess(self.reactor, "mfp-simulator", ["--config", str(path)],
                                  cwd=self.agent_dir(device_id),
                                  log_path=self.folder / f"simulator-{device_id}.log")
        self.simulators[device_id] = simulator
        return simulator, f"http://127.0.0.1:{port}"

    @staticmethod
    def app_urls(app_ports: dict[str, int]) -> dict[str, str]:
        """The agent's ``[apps]`` for a simulator's app ports."""
        return {app: f"http://127.0.0.1:{port}" for app, port in app_ports.items()}

    async def stop(self) -> None:
        """Stop every process this setup started; their output is in ``*.log`` files here
        (written as it arrives; the CLI's at the end)."""
        processes = {f"cli-{n}": p for n, p in enumerate(self.clis)}
        processes.update({f"simulator-{d}": p for d, p in self.simulators.items()})
        processes.update({f"agent-{d}": p for d, p in self.agents.items()})
        if self.server is not None:
            processes["server"] = self.server
        processes.update({f"relay-{node}": p for node, p in self.relays.items()})
        for process in processes.values():
            await process.stop()
        await self.stop_prosody()
        for name, process in processes.items():
            if process.log_path is None:
                (self.folder / f"{name}.log").write_text(process.output)
        self._remove_socket_folders()

    def _remove_socket_folders(self) -> None:
        """Sockets whose paths were too long live in private folders in the system's temp
        directory: remove this setup's (trial's folders are deep, so there are some)."""
        sockets = [admin_socket_path(self.server_config().xmpp.prosody_dir)]
        for config in (self.folder / "data" / "devices").glob("*/device-agent.toml"):
            try:
                panel = load_device_config(config).panel
            except Exception:
                continue
            if panel is not None:
                sockets.append(panel.socket)
        for socket in sockets:
            remove_private_socket_folder(socket)

    async def cli(self, *args: str, stdin: bytes | None = None,
                  home: Path | None = None) -> tuple[int, str]:
        """Run the terminal CLI against this server."""
        env = {"REMOTECOMM_HOME": str(home or self.terminal_home),
               "REMOTECOMM_SERVER": self.url, "REMOTECOMM_CA": str(self.ca)}
        return await run_command(self.reactor, ["remotecomm", *args], env=env, stdin=stdin)

    def cli_process(self, *args: str) -> ChildProcess:
        """Start the terminal CLI in the background (for `open`)."""
        env = {"REMOTECOMM_HOME": str(self.terminal_home),
               "REMOTECOMM_SERVER": self.url, "REMOTECOMM_CA": str(self.ca)}
        process = ChildProcess(self.reactor, ["remotecomm", *args], cwd=self.folder, env=env)
        self.clis.append(process)
        return process

    async def login(self, user: str, home: Path | None = None) -> None:
        """``remotecomm login`` as ``user`` (fails the test if refused), on this setup's
        terminal or on another one (``home``)."""
        code, output = await self.cli("login", "--user", user, "--password-stdin",
                                      stdin=PASSWORD.encode() + b"\n", home=home)
        if code != 0:
            raise AssertionError(f"login as {user} failed ({code}): {output}")

    async def api(self, method: str, path: str, body: dict | None = None,
                  home: Path | None = None) -> tuple[int, dict]:
        """Call the REST API as the logged-in terminal (or the one at ``home``); status and
        JSON answer."""
        state = json.loads(((home or self.terminal_home) / "state.json").read_text())
        return await call_api(http_client(self.reactor, self.ca), self.url, method, path,
                              terminal_id=state["terminal_id"], token=state["token"],
                              unit_id=state.get("unit_id"), body=body)

    async def device_list(self) -> dict[str, dict]:
        """The logged-in terminal's device list from the REST API, by device ID."""
        _, answer = await self.api("GET", "/api/v1/devices")
        return {device["device_id"]: device for device in answer.get("devices", [])}

    async def wait_for_state(self, request_id: str, state: str, timeout: float = 10) -> dict:
        """Poll a session request until it reaches ``state`` (or ended with that reason,
        e.g. ``"expired"``); its last answer."""
        start = self.reactor.seconds()
        while True:
            code, answer = await self.api("GET", f"/api/v1/sessions/{request_id}")
            if state in (answer.get("state"), answer.get("end_reason")):
                return answer
            if self.reactor.seconds() - start > timeout:
                raise AssertionError(f"{request_id} not {state} within {timeout} s: {answer}")
            await sleep(self.reactor, 0.1)

    async def metrics(self, port: int | None = None) -> dict[str, float]:
        """The server's /metrics (or those on another metrics ``port``: a relay's), as
        {"name{labels}": value}."""
        response = await http_client(self.reactor).get(
            f"http://127.0.0.1:{port or self.metrics_port}/metrics", timeout=5)
        values = {}
        for line in (await response.content()).decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    async def wait_device_state(self, device_id: str, state: str, timeout: float = 10) -> None:
        """Wait until the device list shows ``state`` (online, offline, unknown) for it."""
        start = self.reactor.seconds()
        while True:
            device = (await self.device_list()).get(device_id) or {}
            if device.get("state") == state:
                return
            if self.reactor.seconds() - start > timeout:
                raise AssertionError(f"{device_id} not {state} within {timeout} s: {device}")
            await sleep(self.reactor, 0.1)

    async def wait_device(self, device_id: str, online: bool | None, timeout: float = 10) -> float:
        """Wait until the device shows ``online`` (``None``: absent); the seconds it took."""
        start = self.reactor.seconds()
        while True:
            device = (await self.device_list()).get(device_id)
            state = None if device is None else device["online"]
            if state == online:
                return self.reactor.seconds() - start
            if self.reactor.seconds() - start > timeout:
                raise AssertionError(f"{device_id} not {online} within {timeout} s (is {state})")
            await sleep(self.reactor, 0.1)
