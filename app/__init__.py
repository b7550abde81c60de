"""Authentication service: registration, login and JWT tokens over HTTP."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("authsvc")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"
