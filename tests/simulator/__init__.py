"""Tests of remotecomm.simulator."""
