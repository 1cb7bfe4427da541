"""Users, management units, terminals: passwords, API tokens, login and its throttle."""
