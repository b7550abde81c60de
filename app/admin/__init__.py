"""The admin API: users, their sessions and two-factor, the audit trail."""
