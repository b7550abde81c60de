"""TOTP (RFC 6238): a second factor (`otp`), and its enrolment (a key confirmed by a code)."""
