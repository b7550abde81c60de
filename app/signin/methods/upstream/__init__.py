"""Sign-in with another provider (any OpenID Connect provider, or GitHub): the protocol
(client.py), the sign-ins in progress (states.py), the linked identities (identities.py),
and the method the sign-in flow knows it by (method.py). See docs/providers.md."""
