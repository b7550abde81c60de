"""Software stand-ins for what a person holds (a WebAuthn authenticator), shared by the
tests and the benchmark. Nothing here imports pytest or the service, so `bench/run.py` can
use it without the tests' fixtures and helpers."""
