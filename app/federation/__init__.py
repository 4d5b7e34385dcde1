"""Sign-in with upstream identity providers (SPEC §6)."""
