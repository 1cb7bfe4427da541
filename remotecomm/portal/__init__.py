"""The portal: the manager's web UI for technicians and admins (``/portal``).

A client of the manager's services, like the REST API: it adds no business
rule of its own and imports no store code (``tests/test_layers.py``).
"""
