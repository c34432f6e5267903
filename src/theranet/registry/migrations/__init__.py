"""Alembic migration environment of the registry (run by :mod:`theranet.registry._migrate`)."""
