"""The one translation of service failures into OAuth2 errors, and the §5.2 body."""

from __future__ import annotations

import pytest

from app.core.errors import (
    DatabaseException,
    InvalidGrantException,
    InvalidRequestException,
    InvalidTokenException,
    RateLimitedException,
    TokenExpiredException,
    UserInactiveException,
    ValidationException,
)
from app.middleware.exception import oauth2_error_body
from app.oauth2.token_request import oauth2_errors
from app.openapi import error_responses


@pytest.mark.parametrize(
    "failure", [InvalidTokenException(), TokenExpiredException(), UserInactiveException()]
)
def test_authentication_failures_become_invalid_grant(failure: Exception) -> None:
    with pytest.raises(InvalidGrantException), oauth2_errors():
        raise failure


def test_service_validation_failure_becomes_invalid_request() -> None:
    with pytest.raises(InvalidRequestException) as raised, oauth2_errors():
        raise ValidationException("Password is too long")
    assert raised.value.detail == "Password is too long"


@pytest.mark.parametrize("failure", [RateLimitedException(30), DatabaseException()])
def test_throttling_and_outages_keep_the_contract_error(failure: Exception) -> None:
    with pytest.raises(type(failure)), oauth2_errors():
        raise failure


def test_error_description_keeps_to_the_rfc_6749_character_set() -> None:
    # §5.2: %x20-21 / %x23-5B / %x5D-7E, so no quote, backslash, control or non-ASCII.
    body = oauth2_error_body(error="invalid_request", description='bad "x"\\ é\n', request_id="r")
    assert body == {
        "error": "invalid_request",
        "error_description": "bad ?x?? ??",
        "request_id": "r",
    }


def test_documenting_oauth2_and_contract_errors_under_one_status_is_refused() -> None:
    with pytest.raises(TypeError):
        error_responses(InvalidRequestException, ValidationException)
