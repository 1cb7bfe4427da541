"""``twistd remotecomm``: the manager (REST API, XMPP component) and the relay."""
