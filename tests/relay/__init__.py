"""Tests of remotecomm.relay."""
