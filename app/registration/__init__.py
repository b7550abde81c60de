"""Registration: creating an account (and signing it in, or mailing its verification)."""
