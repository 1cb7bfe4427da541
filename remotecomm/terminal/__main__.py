"""``python -m remotecomm.terminal``: the same as ``remotecomm``."""

import sys

from remotecomm.terminal.main import main

main(sys.argv[1:])
