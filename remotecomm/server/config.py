"""The server's configuration (``etc/remotecomm.toml``), validated as a whole."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from remotecomm.accounts.passwords import PasswordHashConfig
from remotecomm.config import ConfigError, ConfigFile, is_loopback_endpoint
from remotecomm.identifiers import MAIL_ADDRESS, RELAY_NODE
from remotecomm.relay.gateway import DEFAULT_CAPACITY
from remotecomm.store.engine import POSTGRESQL_SCHEME

TLS_PROFILES = ("modern", "intermediate")
_DOMAIN = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+"
_HOST = r"[A-Za-z0-9.:-]{1,253}"
_ADDRESS = r"[0-9a-fA-F.:]{2,45}|\*"



@dataclass(frozen=True)
class TLSConfig:
    """Where the server's certificate lives and which TLS profile it speaks."""

    enabled: bool
    certificate: Path
    key: Path
    ca_certificate: Path
    ca_key: Path
    profile: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class AccountsConfig:
    """API token lifetime and login throttling."""

    api_token_lifetime: float
    failures_per_account: int
    failures_per_address: int
    failure_window: float
    password_hash: PasswordHashConfig


@dataclass(frozen=True)
class XmppConfig:
    """The manager's XMPP side: its component on Prosody, and Prosody's generated config."""

    enabled: bool
    interface: str
    public_host: str
    c2s_port: int
    component_port: int
    devices_domain: str
    component_domain: str
    secret_file: Path
    prosody_dir: Path
    certificate: Path
    key: Path
    prosodyctl: str

    @property
    def component_endpoint(self) -> str:
        """Where the component connects (Prosody's component port is loopback only)."""
        return f"tcp:127.0.0.1:{self.component_port}:timeout=5"


@dataclass(frozen=True)
class SessionsConfig:
    """Timing rules of sessions and whether test approvers are accepted."""

    approval_timeout: float
    join_window: float
    max_lifetime: float
    idle_timeout: float
    allow_test_approver: bool
    max_open_per_user: int = 10
    max_open_per_device: int = 4


@dataclass(frozen=True)
class RelayConfig:
    """The relay node this server runs, how clients reach it, and how relay and manager
    reach each other when they run apart."""

    node: str
    public_url: str
    database: Path
    manager_url: str        # where a relay-only process calls the manager
    api_url: str            # where the manager calls this relay node (sent in heartbeats)
    api_secret_file: Path   # the shared secret of the relay ↔ manager API
    heartbeat_interval: float  # how often this relay node tells the manager it is alive
    lost_after: float       # manager: a node silent this long is lost, its sessions end
    max_connections_per_address: int = 500  # WebSockets open at once from one address
    capacity: int = DEFAULT_CAPACITY  # sessions it holds at once; past it, placement skips it


@dataclass(frozen=True)
class RecordsConfig:
    """Collecting what devices kept of sessions (S311–S314): how often, how far back."""

    collect_every: float    # seconds between scheduled collections; 0: only on request
    collect_window: float   # sessions that ended longer ago than this are not asked about
    device_timeout: float   # how long one device may take to answer


@dataclass(frozen=True)
class MailConfig:
    """The SMTP server reports are e-mailed through (S320's e-mail variant)."""

    enabled: bool
    smtp_host: str
    smtp_port: int
    username: str | None
    password_file: Path | None   # the SMTP password, alone in a file (mode 0600)
    from_address: str
    require_starttls: bool       # always true unless smtp_host is a loopback address
    ca_certificate: Path | None  # the CA the SMTP server's certificate chains to (default:
                                 # the system's)
    timeout: float
    send_grace: float            # a scheduled report is sent this long after its time, so
                                 # that devices' information can arrive first


@dataclass(frozen=True)
class MetricsConfig:
    """Where ``/metrics`` is served (its own listener, loopback by default)."""

    enabled: bool
    listen: str


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``twistd remotecomm`` needs, with paths resolved."""

    config_path: Path
    data_dir: Path
    listen: str
    public_url: str
    tls: TLSConfig
    database: Path | str    # the manager's store: a SQLite file, or a PostgreSQL URL
    accounts: AccountsConfig
    xmpp: XmppConfig
    sessions: SessionsConfig
    relay: RelayConfig
    metrics: MetricsConfig
    records: RecordsConfig
    mail: MailConfig


def load_server_config(path: str | Path) -> ServerConfig:
    """Read and validate a server config file; raise :class:`ConfigError` on any problem."""
    config = ConfigFile.load(path)

    server = config.section("server")
    data_dir = server.get_path("data_dir", config.path.parent / "data")
    listen = server.get_server_endpoint("listen", "tcp:8443:interface=127.0.0.1")
    public_url = server.get_str("public_url", "https://localhost:8443",
                                pattern=r"https?://[^\s/?#]+/?")
    server.finish()

    tls_section = config.section("tls")
    tls_dir = data_dir / "tls"
    tls = TLSConfig(
        enabled=tls_section.get_bool("enabled", True),
        certificate=tls_section.get_path("certificate", tls_dir / "server.pem", base=data_dir),
        key=tls_section.get_path("key", tls_dir / "server.key", base=data_dir),
        ca_certificate=tls_section.get_path("ca_certificate", tls_dir / "ca.pem", base=data_dir),
        ca_key=tls_section.get_path("ca_key", tls_dir / "ca.key", base=data_dir),
        profile=tls_section.get_choice("profile", "modern", TLS_PROFILES),
        names=tuple(tls_section.get_str_list("names", ["localhost", "127.0.0.1"])),
    )
    tls_section.finish()
    if not tls.enabled and not is_loopback_endpoint(listen):
        raise ConfigError(
            f"{config.path}: [tls] enabled = false is allowed only when [server] listen "
            f"binds a loopback interface (plain HTTP is for loopback tests)")
    scheme = "https" if tls.enabled else "http"
    if not public_url.startswith(scheme + "://"):
        raise ConfigError(f"{config.path}: [server] public_url must start with {scheme}:// "
                          f"when [tls] enabled = {str(tls.enabled).lower()}")

    store = config.section("store")
    database = store.get_path("database", data_dir / "manager.sqlite3", base=data_dir)
    url = store.get_str("url", None)
    if url is not None:
        if not url.startswith(POSTGRESQL_SCHEME) or any(c.isspace() for c in url):
            raise ConfigError(f"{config.path}: [store] url must be a PostgreSQL URL "
                              f"starting with {POSTGRESQL_SCHEME} (or leave it out: the "
                              f"store is then the SQLite file [store] database)")
        database = url
    store.finish()

    accounts = config.section("accounts")
    hashing = PasswordHashConfig(
        time_cost=accounts.get_int("argon2_time_cost", 3, minimum=1, maximum=20),
        memory_kib=accounts.get_int("argon2_memory_kib", 65536, minimum=8, maximum=4 * 1024 * 1024),
        parallelism=accounts.get_int("argon2_parallelism", 1, minimum=1, maximum=16),
        threads=accounts.get_int("password_hash_threads", 2, minimum=1, maximum=64),
        max_waiting=accounts.get_int("password_hash_max_waiting", 64, minimum=1, maximum=10_000),
    )
    accounts_config = AccountsConfig(
        api_token_lifetime=accounts.get_duration("api_token_lifetime", 12 * 3600,
                                                 minimum=60, maximum=30 * 86400),
        failures_per_account=accounts.get_int("login_failures_per_account", 5, minimum=1),
        failures_per_address=accounts.get_int("login_failures_per_address", 20, minimum=1),
        failure_window=accounts.get_duration("login_failure_window", 900, minimum=1),
        password_hash=hashing,
    )
    accounts.finish()

    xmpp_section = config.section("xmpp")
    xmpp = XmppConfig(
        enabled=xmpp_section.get_bool("enabled", True),
        interface=xmpp_section.get_str("interface", "127.0.0.1", pattern=_ADDRESS),
        public_host=xmpp_section.get_str("public_host", "127.0.0.1", pattern=_HOST),
        c2s_port=xmpp_section.get_int("c2s_port", 5222, minimum=1, maximum=65535),
        component_port=xmpp_section.get_int("component_port", 5347, minimum=1, maximum=65535),
        devices_domain=xmpp_section.get_str("devices_domain", "devices.localhost",
                                            pattern=_DOMAIN),
        component_domain=xmpp_section.get_str("component_domain", "rms.localhost",
                                              pattern=_DOMAIN),
        secret_file=xmpp_section.get_path("component_secret_file",
                                          data_dir / "xmpp" / "component.secret", base=data_dir),
        prosody_dir=xmpp_section.get_path("prosody_dir", data_dir / "prosody", base=data_dir),
        certificate=xmpp_section.get_path("certificate", tls_dir / "xmpp.pem", base=data_dir),
        key=xmpp_section.get_path("key", tls_dir / "xmpp.key", base=data_dir),
        prosodyctl=xmpp_section.get_str("prosodyctl", "prosodyctl"),
    )
    xmpp_section.finish()
    if xmpp.devices_domain == xmpp.component_domain:
        raise ConfigError(f"{config.path}: [xmpp] devices_domain and component_domain "
                          f"must differ")
    if xmpp.c2s_port == xmpp.component_port:
        raise ConfigError(f"{config.path}: [xmpp] c2s_port and component_port must differ")

    sessions_section = config.section("sessions")
    sessions = SessionsConfig(
        approval_timeout=sessions_section.get_duration("approval_timeout", 120, minimum=1,
                                                       maximum=3600),
        join_window=sessions_section.get_duration("join_window", 120, minimum=1, maximum=3600),
        max_lifetime=sessions_section.get_duration("max_lifetime", 8 * 3600, minimum=60,
                                                   maximum=12 * 3600),
        idle_timeout=sessions_section.get_duration("idle_timeout", 900, minimum=10,
                                                   maximum=12 * 3600),
        max_open_per_user=sessions_section.get_int("max_open_per_user", 10, minimum=1,
                                                   maximum=100_000),
        max_open_per_device=sessions_section.get_int("max_open_per_device", 4, minimum=1,
                                                     maximum=10_000),
        allow_test_approver=sessions_section.get_bool("allow_test_approver", False),
    )
    sessions_section.finish()

    relay_section = config.section("relay")
    default_relay_url = ("wss" if tls.enabled else "ws") + public_url[public_url.index(":"):]
    relay = RelayConfig(
        node=relay_section.get_str("node", "relay-1", pattern=RELAY_NODE),
        public_url=relay_section.get_str("public_url", default_relay_url.rstrip("/") + "/relay",
                                         pattern=r"wss?://[^\s?#]+"),
        database=relay_section.get_path("database", data_dir / "relay.sqlite3", base=data_dir),
        manager_url=relay_section.get_str("manager_url", public_url.rstrip("/"),
                                          pattern=r"https?://[^\s/?#]+/?").rstrip("/"),
        api_url=relay_section.get_str("api_url", public_url.rstrip("/"),
                                      pattern=r"https?://[^\s/?#]+/?").rstrip("/"),
        api_secret_file=relay_section.get_path("api_secret_file", data_dir / "relay-api.secret",
                                               base=data_dir),
        heartbeat_interval=relay_section.get_duration("heartbeat_interval", 5, minimum=0.2,
                                                      maximum=60),
        lost_after=relay_section.get_duration("lost_after", 30, minimum=1, maximum=3600),
        max_connections_per_address=relay_section.get_int(
            "max_connections_per_address", 500, minimum=1, maximum=1_000_000),
        capacity=relay_section.get_int("capacity", DEFAULT_CAPACITY, minimum=1,
                                       maximum=1_000_000),
    )
    relay_section.finish()

    metrics_section = config.section("metrics")
    metrics = MetricsConfig(
        enabled=metrics_section.get_bool("enabled", True),
        listen=metrics_section.get_server_endpoint("listen", "tcp:9464:interface=127.0.0.1"))
    metrics_section.finish()

    records_section = config.section("records")
    records = RecordsConfig(
        collect_every=records_section.get_duration("collect_every", 3600, minimum=0,
                                                   maximum=7 * 86400),
        collect_window=records_section.get_duration("collect_window", 30 * 86400, minimum=60,
                                                    maximum=366 * 86400),
        device_timeout=records_section.get_duration("device_timeout", 10, minimum=1,
                                                    maximum=120))
    if 0 < records.collect_every < 10:
        raise ConfigError(f"{config.path}: [records] collect_every: 0 (off) or at least 10 s")
    records_section.finish()

    mail_section = config.section("mail")
    smtp_host = mail_section.get_str("smtp_host", "127.0.0.1", pattern=_HOST)
    loopback = smtp_host in ("127.0.0.1", "::1", "localhost") or smtp_host.startswith("127.")
    mail = MailConfig(
        enabled=mail_section.get_bool("enabled", False),
        smtp_host=smtp_host,
        smtp_port=mail_section.get_int("smtp_port", 587, minimum=1, maximum=65535),
        username=mail_section.get_str("username", None, pattern=r"[^\s]{1,200}"),
        password_file=mail_section.get_path("password_file", None, base=data_dir),
        from_address=mail_section.get_str("from_address", "remotecomm@localhost",
                                          pattern=MAIL_ADDRESS),
        require_starttls=mail_section.get_bool("require_starttls", True),
        ca_certificate=mail_section.get_path("ca_certificate", None, base=data_dir),
        timeout=mail_section.get_duration("timeout", 30, minimum=1, maximum=300),
        send_grace=mail_section.get_duration("send_grace", 900, minimum=0, maximum=86400))
    mail_section.finish()
    if not mail.require_starttls and not loopback:
        raise ConfigError(f"{config.path}: [mail] require_starttls = false is allowed only "
                          f"for an SMTP server on a loopback address")
    if (mail.username is None) != (mail.password_file is None):
        raise ConfigError(f"{config.path}: [mail] username and password_file go together")

    config.finish()
    return ServerConfig(
        config_path=config.path,
        data_dir=data_dir,
        listen=listen,
        public_url=public_url.rstrip("/"),
        tls=tls,
        database=database,
        accounts=accounts_config,
        xmpp=xmpp,
        sessions=sessions,
        relay=relay,
        metrics=metrics,
        records=records,
        mail=mail,
    )

