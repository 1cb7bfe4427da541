"""XMPP: the manager's component, the device's client, payloads, and Prosody."""
