"""remotecomm: remote sessions to office devices behind customer firewalls.

Read the code from here down: ``server/`` builds ``twistd remotecomm``,
``device/`` builds ``twistd device-agent``, ``cli/`` is the ``remotecomm``
command, ``store/`` holds the database, ``accounts/`` logins and tokens,
``web/`` the REST API.
"""

__version__ = "0.1.0"
