"""Signing keys: the keyring, their rows, the JWKS and the discovery metadata."""
