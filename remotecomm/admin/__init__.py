"""``remotecomm-admin``: set up a server host and provision units, users and devices."""
