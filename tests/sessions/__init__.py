"""Tests of remotecomm.sessions."""
