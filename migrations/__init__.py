"""Alembic migrations for Hearth (shipped as a package so `hearth db upgrade` finds them)."""
