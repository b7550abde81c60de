"""Sessions: their rows, refresh, logout and the bearer check of access tokens."""
