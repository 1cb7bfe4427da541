"""The ``remotecomm`` command: terminal side (login, devices) and server administration."""
