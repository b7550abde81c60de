"""Roles and the /admin routes over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.database import Database
from tests.support import RegisteredUser, UserFactory
from tests.support.admin import audit_events, bearer, claims_of, grant, sign_in
from tests.support.databases import statements


def _admin_operations(app: FastAPI) -> list[tuple[str, str]]:
    document = app.openapi()
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        if path.startswith("/admin")
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


async def test_every_admin_route_refuses_a_signed_in_non_admin_with_403(
    app: FastAPI, client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    operations = _admin_operations(app)
    assert len(operations) >= 6  # the document really lists the /admin routes
    target, nobody = await user_factory(), await user_factory()
    for method, template in operations:
        path = re.sub(r"\{[^}]+\}", str(target.id), template)
        kwargs: dict[str, Any] = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
        response = await client.request(method, path, headers=nobody.auth, **kwargs)
        assert response.status_code == 403, f"{method} {template}: {response.text}"
        assert response.json()["error_code"] == "FORBIDDEN"
        anonymous = await client.request(method, path, **kwargs)
        assert anonymous.status_code == 401, f"{method} {template}"
        assert anonymous.json()["error_code"] == "NOT_AUTHENTICATED"
    assert (await client.get("/users/me", headers=target.auth)).status_code == 200  # untouched


async def test_access_tokens_carry_the_roles_claim(
    client: httpx.AsyncClient, user_factory: UserFactory, database: Database
) -> None:
    user = await user_factory()
    assert claims_of(user.access_token)["roles"] == []
    assert "roles" not in claims_of(user.refresh_token)
    await grant(database, user.id, "billing", "admin")
    assert claims_of(user.access_token)["roles"] == []  # a token is what it was issued as
    refreshed = await client.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert claims_of(refreshed.json()["access_token"])["roles"] == ["admin", "billing"]
    login = await sign_in(client, user.username)
    assert claims_of(login["access_token"])["roles"] == ["admin", "billing"]
    assert login["user"]["roles"] == ["admin", "billing"]
    me = await client.get("/users/me", headers=bearer(login["access_token"]))
    assert me.json()["roles"] == ["admin", "billing"]


async def test_a_role_change_counts_on_admin_routes_at_the_next_request(
    client: httpx.AsyncClient, user_factory: UserFactory, admin: RegisteredUser
) -> None:
    other = await user_factory()
    assert (await client.get("/admin/users", headers=other.auth)).status_code == 403
    promote = await client.patch(
        f"/admin/users/{other.id}", json={"roles": ["admin"]}, headers=admin.auth
    )
    assert promote.status_code == 200
    assert promote.json()["roles"] == ["admin"]
    # The old token says roles=[]; the database says admin, and the database decides.
    assert (await client.get("/admin/users", headers=other.auth)).status_code == 200
    demote = await client.patch(f"/admin/users/{admin.id}", json={"roles": []}, headers=other.auth)
    assert demote.status_code == 200
    assert (await client.get("/admin/users", headers=admin.auth)).status_code == 403


async def test_user_list_pages_through_more_users_than_one_page_with_inserts_between(
    client: httpx.AsyncClient, user_factory: UserFactory, admin: RegisteredUser
) -> None:
    for _ in range(11):
        await user_factory()
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/admin/users", params=params, headers=admin.auth)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        if pages == 1:
            await user_factory()  # inserted while the client pages: lands at the end
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) == 13  # admin + 11 + the one inserted on the way
    assert pages == 3


async def test_user_list_filters_by_part_of_the_name_state_and_role(
    client: httpx.AsyncClient, user_factory: UserFactory, admin: RegisteredUser, database: Database
) -> None:
    carol = await user_factory(email="Carol.Smith@Example.com", username="CarolS")
    dave = await user_factory(email="dave@example.org", username="dave_100")
    await grant(database, dave.id, "billing")
    await client.patch(f"/admin/users/{carol.id}", json={"is_active": False}, headers=admin.auth)

    async def ids(**params: Any) -> list[int]:
        response = await client.get("/admin/users", params=params, headers=admin.auth)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids(q="SMITH") == [carol.id]
    assert await ids(q="carols") == [carol.id]
    assert await ids(q="E_1") == [dave.id]
    assert await ids(q="_") == [dave.id]  # a literal underscore, not a wildcard
    assert await ids(q="%") == []
    assert await ids(q="example.org") == [dave.id]
    assert await ids(is_active=False) == [carol.id]
    assert await ids(role="billing") == [dave.id]
    assert await ids(role="admin") == [admin.id]
    assert await ids(role="admin", q="dave") == []


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 201}, {"cursor": "garbage"}, {"role": "Admin"}, {"cursor": "djE6LTE"}],
)
async def test_user_list_with_bad_parameters_is_400(
    client: httpx.AsyncClient, admin: RegisteredUser, params: dict[str, Any]
) -> None:
    response = await client.get("/admin/users", params=params, headers=admin.auth)
    assert response.status_code == 400
    assert response.json()["error_code"] == "VALIDATION_ERROR"


async def test_one_user_is_shown_with_roles_and_updated_at(
    client: httpx.AsyncClient, admin: RegisteredUser
) -> None:
    response = await client.get(f"/admin/users/{admin.id}", headers=admin.auth)
    assert response.status_code == 200
    body = response.json()
    assert body["roles"] == ["admin"]
    assert body["updated_at"].endswith("Z")
    assert "hashed_password" not in body


@pytest.mark.parametrize("user_id", ["999999", "0", "-3", "99999999999999999999"])
async def test_an_unknown_user_id_is_404_on_every_user_route(
    client: httpx.AsyncClient, admin: RegisteredUser, user_id: str
) -> None:
    for method, path, body in (
        ("GET", f"/admin/users/{user_id}", None),
        ("PATCH", f"/admin/users/{user_id}", {"is_active": False}),
        ("DELETE", f"/admin/users/{user_id}", None),
        ("DELETE", f"/admin/users/{user_id}/sessions", None),
    ):
        response = await client.request(method, path, json=body, headers=admin.auth)
        assert response.status_code == 404, f"{method} {path}: {response.text}"
        assert response.json()["error_code"] == "NOT_FOUND"


async def test_deactivation_ends_every_session_and_reactivation_lets_the_user_sign_in(
    client: httpx.AsyncClient, user_factory: UserFactory, admin: RegisteredUser
) -> None:
    user = await user_factory()
    other = await sign_in(client, user.username)

    off = await client.patch(
        f"/admin/users/{user.id}", json={"is_active": False}, headers=admin.auth
    )

    assert off.status_code == 200
    assert off.json()["is_active"] is False
    for token in (user.access_token, other["access_token"]):
        assert (await client.get("/users/me", headers=bearer(token))).status_code == 401
    on = await client.patch(f"/admin/users/{user.id}", json={"is_active": True}, headers=admin.auth)
    assert on.json()["is_active"] is True
    assert (await client.get("/users/me", headers=user.auth)).status_code == 401  # still ended
    await sign_in(client, user.username)


@pytest.mark.parametrize(
    "body",
    [
        {"roles": ["Admin"]},
        {"roles": ["a" * 33]},
        {"roles": [f"r{n}" for n in range(21)]},
        {"is_active": None},
        {"is_active": "no"},
        {"email": "x@example.com"},
        {"roles": "admin"},
    ],
)
async def test_patch_with_bad_fields_is_400_and_changes_nothing(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    admin: RegisteredUser,
    body: dict[str, Any],
) -> None:
    user = await user_factory()
    response = await client.patch(f"/admin/users/{user.id}", json=body, headers=admin.auth)
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] == "VALIDATION_ERROR"
    shown = (await client.get(f"/admin/users/{user.id}", headers=admin.auth)).json()
    assert shown["roles"] == []
    assert shown["is_active"] is True


async def test_roles_are_replaced_as_a_whole_and_repeats_are_one(
    client: httpx.AsyncClient, user_factory: UserFactory, admin: RegisteredUser
) -> None:
    user = await user_factory()
    first = await client.patch(
        f"/admin/users/{user.id}", json={"roles": ["b.x", "a-1", "b.x"]}, headers=admin.auth
    )
    assert first.json()["roles"] == ["a-1", "b.x"]
    second = await client.patch(
        f"/admin/users/{user.id}", json={"roles": ["c_2"]}, headers=admin.auth
    )
    assert second.json()["roles"] == ["c_2"]


async def test_the_last_active_admin_cannot_be_demoted_deactivated_or_deleted(
    client: httpx.AsyncClient, user_factory: UserFactory, admin: RegisteredUser
) -> None:
    for method, body in (
        ("PATCH", {"roles": []}),
        ("PATCH", {"is_active": False}),
        ("DELETE", None),
    ):
        response = await client.request(
            method, f"/admin/users/{admin.id}", json=body, headers=admin.auth
        )
        assert response.status_code == 409, response.text
        assert response.json()["error_code"] == "LAST_ADMIN"
    assert (await client.get("/admin/users", headers=admin.auth)).status_code == 200
    # An inactive admin does not count: promoting one does not free the last active one.
    spare = await user_factory()
    await client.patch(f"/admin/users/{spare.id}", json={"roles": ["admin"]}, headers=admin.auth)
    await client.patch(f"/admin/users/{spare.id}", json={"is_active": False}, headers=admin.auth)
    refused = await client.patch(f"/admin/users/{admin.id}", json={"roles": []}, headers=admin.auth)
    assert refused.status_code == 409


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    client: httpx.AsyncClient, user_factory: UserFactory, admin: RegisteredUser
) -> None:
    for round_ in range(5):
        other = await user_factory()
        promote = await client.patch(
            f"/admin/users/{other.id}", json={"roles": ["admin"]}, headers=admin.auth
        )
        assert promote.status_code == 200
        survivor_token = {"a": admin.access_token, "b": other.access_token}
        a, b = await asyncio.gather(
            client.patch(f"/admin/users/{other.id}", json={"roles": []}, headers=admin.auth),
            client.patch(f"/admin/users/{admin.id}", json={"roles": []}, headers=other.auth),
        )
        statuses = sorted([a.status_code, b.status_code])
        assert statuses in ([200, 403], [200, 409]), (round_, a.text, b.text)
        admins = (
            await client.get(
                "/admin/users",
                params={"role": "admin"},
                headers=bearer(survivor_token["a" if a.status_code == 200 else "b"]),
            )
        ).json()["items"]
        assert len(admins) == 1
        if admins[0]["id"] != admin.id:  # keep the fixture's admin the admin for the next round
            admin.access_token, other.access_token = other.access_token, admin.access_token
            admin.id, other.id = other.id, admin.id


async def test_deleting_a_user_ends_their_tokens_and_records_the_admin_as_actor(
    client: httpx.AsyncClient, user_factory: UserFactory, admin: RegisteredUser, database: Database
) -> None:
    user = await user_factory()
    response = await client.delete(f"/admin/users/{user.id}", headers=admin.auth)
    assert response.status_code == 204
    assert (await client.get("/users/me", headers=user.auth)).status_code == 401
    assert (await client.get(f"/admin/users/{user.id}", headers=admin.auth)).status_code == 404
    [deleted] = await audit_events(database, "user.deleted")
    assert (deleted.user_id, deleted.actor_id) == (user.id, admin.id)


async def test_signing_a_user_out_everywhere_ends_all_their_sessions_only(
    client: httpx.AsyncClient, user_factory: UserFactory, admin: RegisteredUser, database: Database
) -> None:
    user = await user_factory()
    other = await sign_in(client, user.username)
    response = await client.delete(f"/admin/users/{user.id}/sessions", headers=admin.auth)
    assert response.status_code == 204
    for token in (user.access_token, other["access_token"]):
        assert (await client.get("/users/me", headers=bearer(token))).status_code == 401
    assert (await client.get("/users/me", headers=admin.auth)).status_code == 200
    [revoked] = await audit_events(database, "session.revoked")
    assert (revoked.user_id, revoked.actor_id) == (user.id, admin.id)
    assert revoked.details == {"scope": "all", "count": 2}


async def test_the_bearer_check_with_roles_is_one_select_and_writes_nothing(
    client: httpx.AsyncClient, admin: RegisteredUser, database: Database
) -> None:
    with statements(database.engine) as me:
        assert (await client.get("/users/me", headers=admin.auth)).status_code == 200
    with statements(database.engine) as listing:
        assert (await client.get("/admin/users", headers=admin.auth)).status_code == 200
    assert me == ["SELECT"]  # user, session and roles in one statement
    assert listing == ["SELECT", "SELECT"]  # the same check, then the page
