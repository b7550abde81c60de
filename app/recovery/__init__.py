"""Account recovery and verification: password reset, email verification and change."""
