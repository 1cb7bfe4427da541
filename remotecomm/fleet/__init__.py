"""The manager's fleet administration: registering, moving, revoking devices and rotating
their credentials."""
