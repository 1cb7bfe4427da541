"""The HTTPS side of the manager: REST API, health checks, the site that serves them."""
