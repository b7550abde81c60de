"""The sign-in methods, one folder each, and the one list that registers them.

A method is a subclass of `SignInMethod` (app.signin.methods.base) in a folder of its own;
a folder may also hold a `routes` module (its enrolment's endpoints), which the app
includes. Adding a method is its folder plus one line in METHODS; the flow, the second
step's answer and the two-factor switch find it there.
"""

from __future__ import annotations

from app.signin.methods.base import SignInMethod, Step
from app.signin.methods.passkey.method import PasskeyMethod
from app.signin.methods.password.method import PasswordMethod
from app.signin.methods.recovery_code.method import RecoveryCodeMethod
from app.signin.methods.totp.method import TotpMethod
from app.signin.methods.upstream.method import UpstreamMethod

# Order matters where two methods could claim one submission: the first one asked wins.
METHODS: tuple[type[SignInMethod], ...] = (
    PasswordMethod,
    TotpMethod,
    RecoveryCodeMethod,
    PasskeyMethod,
    UpstreamMethod,
)


def for_step(step: Step) -> tuple[type[SignInMethod], ...]:
    return tuple(method for method in METHODS if step in method.steps)


def by_id(method_id: str) -> type[SignInMethod] | None:
    return next((method for method in METHODS if method.id == method_id), None)
