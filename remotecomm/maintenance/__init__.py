"""Remote maintenance over XMPP without a session (S121–S125): jobs a user asks a device to
run -- read counters and supplies, read and set a setting, fetch its log."""
