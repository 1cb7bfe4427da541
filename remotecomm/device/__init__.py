"""``twistd device-agent``: the agent on a device ("Cloud Hub Agent")."""
