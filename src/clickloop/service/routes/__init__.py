"""The HTTP routers: ``serving`` (client keys), ``contexts`` (admin keys), ``ops`` (no key)."""
