"""Client authentication at the OAuth2 endpoints (RFC 6749 §2.3.1), one for all of them:
the token endpoint, revocation and introspection. HTTP Basic (RFC 7617) or the form's
`client_id` and `client_secret`, as confidential OpenID Connect clients will use them."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import InvalidClientException, InvalidRequestException
from app.models.client import OAuthClient
from app.oauth2.clients import ClientService

MAX_CREDENTIAL_CHARS = 256


class MalformedCredentials(ValueError):
    """An Authorization header that is not `Basic base64(id:secret)`."""


def parse_basic(authorization: str) -> tuple[str, str]:
    """(client_id, client_secret) of a Basic header; raises MalformedCredentials.

    §2.3.1: both are form-encoded before they are joined by a colon, so they are decoded
    after the split (a secret may then contain a colon, the id may not).
    """
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or len(encoded) > 2 * MAX_CREDENTIAL_CHARS:
        raise MalformedCredentials("not HTTP Basic")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise MalformedCredentials("bad base64") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise MalformedCredentials("no colon")
    return unquote(client_id), unquote(secret)


Method = Literal["client_secret_basic", "client_secret_post", "none"]


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """What a request presents as its client (RFC 6749 §2.3.1): the id, and the secret of a
    confidential client (None for a public client naming itself with `client_id`)."""

    client_id: str
    secret: str | None
    method: Method


def presented_credentials(
    authorization: str | None, form: Mapping[str, str]
) -> ClientCredentials | None:
    """The client credentials of a request to an OAuth2 endpoint, or None for no client.

    HTTP Basic (`client_secret_basic`) or `client_id`/`client_secret` in the form
    (`client_secret_post`); a request uses one method at most (§2.3). Empty Basic
    credentials (`Basic Og==`, what the Swagger UI sends) are no client at all.
    Raises InvalidClientException (malformed, another scheme) or InvalidRequestException
    (two methods at once).
    """
    basic: ClientCredentials | None = None
    if authorization is not None:
        try:
            client_id, secret = parse_basic(authorization)
        except MalformedCredentials:
            raise InvalidClientException("Client authentication must use HTTP Basic") from None
        if secret:
            basic = ClientCredentials(client_id, secret, "client_secret_basic")
        elif client_id:  # `Basic base64("my-cli:")`: a public client naming itself
            basic = ClientCredentials(client_id, None, "none")
    form_id, form_secret = form.get("client_id"), form.get("client_secret")
    if basic is not None:
        if form_secret is not None:
            raise InvalidRequestException("Client credentials both in HTTP Basic and the form")
        return basic
    if form_secret is not None:
        return ClientCredentials(form_id or "", form_secret, "client_secret_post")
    if form_id is not None:
        return ClientCredentials(form_id, None, "none")
    return None


async def authenticate_client(
    session: AsyncSession, credentials: ClientCredentials | None, *, required: bool
) -> OAuthClient | None:
    """The registered client the credentials prove, or None for a public one (no secret:
    nothing to prove). Raises InvalidClientException for wrong credentials, and for none
    at all where a registered client is `required`."""
    if credentials is None or credentials.secret is None:
        if required:
            raise InvalidClientException(
                "Client authentication is required: HTTP Basic, or client_id and "
                "client_secret in the form"
            )
        return None
    client = await ClientService(session).authenticate(credentials.client_id, credentials.secret)
    if client is None:
        raise InvalidClientException()
    return client
