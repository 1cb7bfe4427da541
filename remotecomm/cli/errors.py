"""How the CLI fails: one clear line on stderr and a documented exit code."""

EXIT_OK = 0
EXIT_FAILED = 1        # the server refused, or something went wrong
EXIT_USAGE = 2         # bad arguments or bad local input
EXIT_NOT_LOGGED_IN = 3  # no API token, or the server no longer accepts it
EXIT_UNREACHABLE = 4   # the server did not answer
# remotecomm open: how the request ended when it did not end approved
EXIT_REFUSED = 10             # the device's operator said NO (or a test approver was refused)
EXIT_APPROVAL_TIMEOUT = 11    # nobody answered on the device in time
EXIT_DEVICE_OFFLINE = 12      # the device is not connected
EXIT_EXPIRED = 13             # approved, but not joined in time
EXIT_DEVICE_NOT_FOUND = 14    # no such device in your unit
EXIT_UNKNOWN_APP = 15         # the device has no such app
EXIT_SESSION_EXISTS = 16      # a session with this device from this terminal is still open
EXIT_SESSION_LOST = 17        # the session ended abnormally (the relay or the device went away)
EXIT_NO_SESSION = 18          # `close`: no open session with that device here


class CliError(Exception):
    """A failure to report as one line with an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.code = code  # the server's error code, when the server refused
