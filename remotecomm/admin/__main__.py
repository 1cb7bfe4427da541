"""``python -m remotecomm.admin``: the same as ``remotecomm-admin``."""

import sys

from remotecomm.admin.main import main

main(sys.argv[1:])
