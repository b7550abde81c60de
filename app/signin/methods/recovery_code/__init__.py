"""Recovery codes: single-use second factors (`otp`) for when the authenticator is lost."""
