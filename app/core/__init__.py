"""The domain: error catalogue, JWT codec, passwords, TOTP, key material.

Imports nothing of the app but app.utils.
"""
