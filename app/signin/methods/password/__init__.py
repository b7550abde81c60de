"""The password: a first factor (`pwd`)."""
