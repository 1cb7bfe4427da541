"""The tables as the code expects them at the newest migration.

Instants are UTC epoch microseconds (``BigInteger``); secrets are stored
only as SHA-256 hashes.  The migrations in ``migrations/versions`` build
exactly this (a test compares them).
"""

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Column, ForeignKey, Index, Integer,
                        MetaData, String, Table, Text, UniqueConstraint, false)

metadata = MetaData()

ROLES = ("technician", "unit-admin")
SESSION_SIDES = ("device", "terminal")

units = Table(
    "units", metadata,
    Column("unit_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

users = Table(
    "users", metadata,
    Column("user_id", String(128), primary_key=True),
    Column("display_name", String(200), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    # A provider admin administers every unit; memberships give everyone else their units.
    Column("provider_admin", Boolean, nullable=False, server_default=false()),
)

memberships = Table(
    "memberships", metadata,
    Column("user_id", String(128), ForeignKey("users.user_id"), primary_key=True),
    Column("unit_id", String(64), ForeignKey("units.unit_id"), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    CheckConstraint("role IN ('technician', 'unit-admin')", name="ck_memberships_role"),
)

# One-time tokens that let a new user set their own password (only the hash is kept).
password_tokens = Table(
    "password_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("used_us", BigInteger, nullable=True),
)
Index("ix_password_tokens_user", password_tokens.c.user_id)

# Failed logins within the throttle's window (older ones are purged): per account, per
# address, per pair, for every manager.
login_failures = Table(
    "login_failures", metadata,
    Column("failure_id", Integer, primary_key=True, autoincrement=True),
    Column("account", String(200), nullable=False),
    Column("address", String(64), nullable=False),
    Column("at_us", BigInteger, nullable=False),
)
Index("ix_login_failures_account", login_failures.c.account, login_failures.c.at_us)
Index("ix_login_failures_address", login_failures.c.address, login_failures.c.at_us)

terminals = Table(
    "terminals", metadata,
    Column("terminal_id", String(64), primary_key=True),
    Column("registered_us", BigInteger, nullable=False),
    Column("last_login_us", BigInteger, nullable=False),
    Column("last_user_id", String(128), ForeignKey("users.user_id"), nullable=False),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(128), ForeignKey("users.user_id"), nullable=False),
    Column("terminal_id", String(64), ForeignKey("terminals.terminal_id"), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),
    Column("source_address", String(64), nullable=True),
)
Index("ix_api_tokens_user", api_tokens.c.user_id)

devices = Table(
    "devices", metadata,
    Column("device_id", String(64), primary_key=True),
    Column("unit_id", String(64), ForeignKey("units.unit_id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),
    Column("online", Boolean, nullable=False),
    Column("last_seen_us", BigInteger, nullable=True),
    # What the agent's last hello said (S-numbers: none; see docs/protocol.md, XMPP).
    Column("agent_version", String(32), nullable=True),
    Column("envelope_version", Integer, nullable=True),
    Column("apps", Text, nullable=False, server_default="[]"),
    Column("last_hello_us", BigInteger, nullable=True),
    Column("firmware_version", String(64), nullable=True),
    # The settings the device declared in its last hello (JSON list of specs), versioned.
    Column("settings", Text, nullable=False, server_default="[]"),
    Column("settings_version", Integer, nullable=True),
    # How many times its XMPP credentials were rotated (0: as registered).
    Column("credentials_version", Integer, nullable=False, server_default="0"),
)
Index("ix_devices_unit", devices.c.unit_id)

# One row per session request (S141); the relay's session ID appears only
# once the relay issued it (S147).  Every stamp is what held at that time.
sessions = Table(
    "sessions", metadata,
    Column("request_id", String(64), primary_key=True),
    Column("state", String(32), nullable=False),
    Column("unit_id", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("terminal_id", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("app_id", String(64), nullable=False),
    Column("relay_node", String(200), nullable=True),
    Column("session_id", String(64), nullable=True, unique=True),
    Column("device_token_hash", String(64), nullable=True, unique=True),
    Column("terminal_token_hash", String(64), nullable=True, unique=True),
    Column("terminal_token_delivered", Boolean, nullable=False),
    Column("approver", String(200), nullable=True),
    Column("approved_by_test_approver", Boolean, nullable=False),
    Column("requested_us", BigInteger, nullable=False),
    Column("approval_deadline_us", BigInteger, nullable=True),
    Column("decided_us", BigInteger, nullable=True),
    Column("join_deadline_us", BigInteger, nullable=True),
    Column("lifetime_deadline_us", BigInteger, nullable=True),
    Column("idle_timeout_us", BigInteger, nullable=True),
    Column("ended_us", BigInteger, nullable=True),
    Column("end_reason", String(32), nullable=True),
    Column("relay_url", String(300), nullable=True),
    Column("device_notified_us", BigInteger, nullable=True),
    Column("end_detail", String(200), nullable=True),
    # What the terminal said of itself with the request (S311's terminal source).
    Column("client_name", String(64), nullable=True),
    Column("client_version", String(64), nullable=True),
    Column("os_name", String(64), nullable=True),
    Column("os_version", String(64), nullable=True),
    # Asks for a device report that never came (S312): how many, the last one.
    Column("device_report_asks", Integer, nullable=False, server_default="0"),
    Column("device_report_asked_us", BigInteger, nullable=True),
    # What reports add up (copied from the connection records as the relay's logs are
    # filed): the instant the session counts at (its first side's start, or its request
    # if no side joined), when it started, how long it ran, the device side's bytes.
    Column("counted_at_us", BigInteger, nullable=False,
           default=lambda context: context.get_current_parameters()["requested_us"]),
    Column("started_us", BigInteger, nullable=True),
    Column("duration_us", BigInteger, nullable=True),
    Column("bytes_to_device", BigInteger, nullable=True),
    Column("bytes_from_device", BigInteger, nullable=True),
    Column("device_reported", Boolean, nullable=False, server_default=false()),
)
Index("ix_sessions_state", sessions.c.state)
# The checks at every request: one open session per device and terminal, and how many the
# user and the device have open.
Index("ix_sessions_device_terminal", sessions.c.device_id, sessions.c.terminal_id,
      sessions.c.state)
Index("ix_sessions_user_state", sessions.c.user_id, sessions.c.state)
Index("ix_sessions_device_state", sessions.c.device_id, sessions.c.state)
Index("ix_sessions_unit_requested", sessions.c.unit_id, sessions.c.requested_us)

Index("ix_sessions_relay_node_state", sessions.c.relay_node, sessions.c.state)
# Covers every column a report reads: a report scans this index, never the table.
Index("ix_sessions_report", sessions.c.unit_id, sessions.c.counted_at_us, sessions.c.state,
      sessions.c.end_reason, sessions.c.device_id, sessions.c.app_id, sessions.c.user_id,
      sessions.c.duration_us, sessions.c.bytes_to_device, sessions.c.bytes_from_device,
      sessions.c.device_notified_us, sessions.c.device_reported)

# The relay nodes: registered by their first heartbeat; "lost" when silent too long.
RELAY_NODE_STATES = ("active", "draining", "lost")
relay_nodes = Table(
    "relay_nodes", metadata,
    Column("node", String(64), primary_key=True),
    Column("api_url", String(300), nullable=False),
    Column("public_url", String(300), nullable=False),
    Column("state", String(16), nullable=False),
    Column("registered_us", BigInteger, nullable=False),
    Column("last_heartbeat_us", BigInteger, nullable=False),
    Column("open_sessions", Integer, nullable=False),
    Column("lost_us", BigInteger, nullable=True),
    Column("capacity", Integer, nullable=True),      # sessions it takes (None: no bound)
    Column("emptied_us", BigInteger, nullable=True),  # a draining node reported itself empty
    CheckConstraint("state IN ('active', 'draining', 'lost')", name="ck_relay_nodes_state"),
)

# One row per side of a session: who connected, when, how it ended, bytes.
session_connections = Table(
    "session_connections", metadata,
    Column("request_id", String(64), ForeignKey("sessions.request_id"), primary_key=True),
    Column("side", String(16), primary_key=True),
    Column("party_id", String(128), nullable=False),
    Column("started_us", BigInteger, nullable=True),
    Column("ended_us", BigInteger, nullable=True),
    Column("ended_normally", Boolean, nullable=True),
    Column("end_reason", String(32), nullable=True),
    Column("bytes_from_side", BigInteger, nullable=False),
    Column("bytes_to_side", BigInteger, nullable=False),
    Column("started_log_key", String(128), nullable=True, unique=True),
    Column("ended_log_key", String(128), nullable=True, unique=True),
    Column("refused_frames", Integer, nullable=True),
    Column("end_detail", String(200), nullable=True),
    # "relay", or "manager" when it wrote the end on a lost relay's behalf; then the relay's
    # own end log, if it comes later, is kept in the late_* columns and changes nothing else.
    Column("ended_by", String(16), nullable=True),
    Column("late_log_key", String(128), nullable=True),
    Column("late_ended_us", BigInteger, nullable=True),
    Column("late_end_reason", String(32), nullable=True),
    Column("late_bytes_from_side", BigInteger, nullable=True),
    Column("late_bytes_to_side", BigInteger, nullable=True),
    CheckConstraint("side IN ('device', 'terminal')", name="ck_session_connections_side"),
)

# What a device reported of a session when its side ended (S313), its own clock beside
# the time the manager received it.  One per session; a repeat is ignored.
session_device_reports = Table(
    "session_device_reports", metadata,
    Column("request_id", String(64), ForeignKey("sessions.request_id"), primary_key=True),
    Column("device_id", String(64), nullable=False),
    Column("app_id", String(64), nullable=False),
    Column("app_version", String(64), nullable=True),
    Column("agent_version", String(32), nullable=False),
    Column("operator", String(200), nullable=False),
    Column("firmware_version", String(64), nullable=True),
    Column("started_us", BigInteger, nullable=False),
    Column("ended_us", BigInteger, nullable=True),  # None: the device lost its end
    Column("end_code", Integer, nullable=True),
    Column("end_reason", String(200), nullable=False),
    Column("bytes_to_device", BigInteger, nullable=True),  # None: not known (agent stopped)
    Column("bytes_from_device", BigInteger, nullable=True),
    Column("errors", Integer, nullable=True),
    Column("reported_us", BigInteger, nullable=False),
    Column("received_us", BigInteger, nullable=False),
)

# Who gets a unit's reports by e-mail, and when (S320's e-mail variant).
report_recipients = Table(
    "report_recipients", metadata,
    Column("unit_id", String(64), ForeignKey("units.unit_id"), primary_key=True),
    Column("address", String(254), primary_key=True),
    Column("added_us", BigInteger, nullable=False),
    Column("added_by", String(128), nullable=False),
)

REPORT_FREQUENCIES = ("daily", "weekly", "monthly")
report_schedules = Table(
    "report_schedules", metadata,
    Column("schedule_id", Integer, primary_key=True, autoincrement=True),
    Column("unit_id", String(64), ForeignKey("units.unit_id"), nullable=False),
    Column("frequency", String(16), nullable=False),
    Column("weekday", Integer, nullable=True),        # weekly: 0 = Monday … 6 = Sunday
    Column("day_of_month", Integer, nullable=True),   # monthly: 1–28
    Column("at_time", String(5), nullable=False),     # HH:MM in the unit's time zone
    Column("group_by", String(16), nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("created_by", String(128), nullable=False),
    CheckConstraint("frequency IN ('daily', 'weekly', 'monthly')",
                    name="ck_report_schedules_frequency"),
)
Index("ix_report_schedules_unit", report_schedules.c.unit_id)

# The mail outbox: one row per report to send (a schedule's occurrence, or "send now").
MAILING_STATES = ("queued", "sending", "sent", "failed")
report_mailings = Table(
    "report_mailings", metadata,
    Column("mailing_id", Integer, primary_key=True, autoincrement=True),
    Column("unit_id", String(64), ForeignKey("units.unit_id"), nullable=False),
    Column("schedule_id", Integer, nullable=True),
    Column("occurrence_us", BigInteger, nullable=True),
    Column("period_from_us", BigInteger, nullable=False),
    Column("period_to_us", BigInteger, nullable=False),
    Column("group_by", String(16), nullable=True),
    Column("requested_by", String(128), nullable=True),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_us", BigInteger, nullable=False),
    Column("last_error", String(300), nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("sent_us", BigInteger, nullable=True),
    Column("recipients", Text, nullable=True),  # JSON list, as sent
    UniqueConstraint("schedule_id", "occurrence_us", name="uq_report_mailings_occurrence"),
    CheckConstraint("state IN ('queued', 'sending', 'sent', 'failed')",
                    name="ck_report_mailings_state"),
)
Index("ix_report_mailings_due", report_mailings.c.state, report_mailings.c.next_attempt_us)

# Maintenance jobs (S121–S125): one row per request to a device; the command itself, so
# that it is sent again by ID after a manager restart.
jobs = Table(
    "jobs", metadata,
    Column("job_id", String(64), primary_key=True),
    Column("unit_id", String(64), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("user_id", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("setting_key", String(40), nullable=True),
    Column("setting_value", String(200), nullable=True),
    Column("state", String(16), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("wait_until_us", BigInteger, nullable=True),
    Column("sent_us", BigInteger, nullable=True),
    Column("answer_deadline_us", BigInteger, nullable=True),
    Column("finished_us", BigInteger, nullable=True),
    Column("error_code", String(32), nullable=True),
    Column("error", String(300), nullable=True),
    Column("result", Text, nullable=True),
    # A firmware job: its image, the one-time download reference (its token's hash; the
    # token itself only ever goes to the device) and how far the device got.
    Column("image_id", String(64), nullable=True),
    Column("download_token_sha256", String(64), nullable=True),
    Column("download_expires_us", BigInteger, nullable=True),
    Column("downloaded_us", BigInteger, nullable=True),
    Column("progress_phase", String(16), nullable=True),
    Column("progress_percent", Integer, nullable=True),
)
Index("ix_jobs_unit_created", jobs.c.unit_id, jobs.c.created_us)
Index("ix_jobs_device_state", jobs.c.device_id, jobs.c.state)
Index("ix_jobs_state", jobs.c.state)

# Firmware images uploaded to the manager for its devices (the files live in the data
# folder, named by image ID).
firmware_images = Table(
    "firmware_images", metadata,
    Column("image_id", String(64), primary_key=True),
    Column("unit_id", String(64), nullable=False),
    Column("version", String(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("uploaded_by", String(128), nullable=False),
    Column("uploaded_us", BigInteger, nullable=False),
)
Index("ix_firmware_images_unit", firmware_images.c.unit_id, firmware_images.c.uploaded_us)

# Runs of scheduled jobs, one row per job and period: inserting the row claims the period
# (so one process runs it, once), finishing it records the outcome.
scheduled_runs = Table(
    "scheduled_runs", metadata,
    Column("job", String(64), primary_key=True),
    Column("period_start_us", BigInteger, primary_key=True),
    Column("started_us", BigInteger, nullable=False),
    Column("finished_us", BigInteger, nullable=True),
    Column("outcome", String(200), nullable=True),
)

# Append-only: rows are inserted, never updated or deleted (triggers refuse it).
audit = Table(
    "audit", metadata,
    Column("audit_id", Integer, primary_key=True, autoincrement=True),
    Column("at_us", BigInteger, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("actor", String(200), nullable=True),
    Column("source_address", String(64), nullable=True),
    Column("unit_id", String(64), nullable=True),
    Column("detail", Text, nullable=False),
)
Index("ix_audit_at", audit.c.at_us)

__all__ = ["metadata", "units", "users", "memberships", "terminals", "api_tokens", "devices",
           "sessions", "relay_nodes", "session_connections", "session_device_reports", "audit",
           "scheduled_runs", "report_recipients", "report_schedules", "report_mailings", "jobs",
           "firmware_images", "password_tokens", "login_failures",
           "ROLES", "SESSION_SIDES", "RELAY_NODE_STATES"]
