"""Tests of remotecomm."""
