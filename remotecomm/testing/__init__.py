"""Test support shipped with the package: fakes, server setups, process helpers."""
