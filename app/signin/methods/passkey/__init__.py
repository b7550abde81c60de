"""Passkeys (WebAuthn): a first factor on their own and a second factor after a password."""
