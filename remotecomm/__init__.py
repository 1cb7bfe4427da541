"""remotecomm: remote sessions to office devices behind customer firewalls.

Read the code from here down: ``server/`` builds ``twistd remotecomm``
(``sessions/``, ``relay/``, ``store/``, ``accounts/``, ``web/``, ``xmpp/``),
``device/`` builds ``twistd device-agent``, ``terminal/`` is the technician's
``remotecomm`` command, ``admin/`` the server host's ``remotecomm-admin``.
docs/architecture.md draws the packages and the rules between them.
"""

__version__ = "0.1.0"
