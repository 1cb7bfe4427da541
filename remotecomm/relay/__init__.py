"""The relay: placement of sessions on relay nodes (and, next, pairing and forwarding)."""
