"""Tests of remotecomm.xmpp."""
