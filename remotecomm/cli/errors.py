"""How the CLI fails: one clear line on stderr and a documented exit code."""

EXIT_OK = 0
EXIT_FAILED = 1        # the server refused, or something went wrong
EXIT_USAGE = 2         # bad arguments or bad local input
EXIT_NOT_LOGGED_IN = 3  # no API token, or the server no longer accepts it
EXIT_UNREACHABLE = 4   # the server did not answer


class CliError(Exception):
    """A failure to report as one line with an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
