"""Mail delivery: messages, backends (file, SMTP) and the outbox's background sender."""
