"""Remote sessions on the manager: the lifecycle, tokens, timers, and the broker."""
