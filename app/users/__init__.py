"""User accounts: their rows, roles and bulk import."""
