"""``remotecomm``: the technician's command -- login, devices, open/close, the local port.

It imports no server code (no SQLAlchemy, alembic or argon2): a technician's
laptop installs only ``remotecomm`` without extras.  ``remotecomm admin …``
hands over to :mod:`remotecomm.admin` when that is installed.
"""
