"""Chaos tier: the operator killed, the API server away, watches expired, a long soak (tests/chaos)."""
