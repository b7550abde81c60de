"""Users as the tests create them: through the API, with one known password."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

PASSWORD = "correct horse battery staple"


@dataclass
class RegisteredUser:
    id: int
    email: str
    username: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


# What the `user_factory` fixture returns: `await user_factory(email=..., username=...)`.
UserFactory = Callable[..., Awaitable[RegisteredUser]]


async def register(client: httpx.AsyncClient, name: str) -> httpx.Response:
    return await client.post(
        "/auth/register",
        json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
    )


async def login(client: httpx.AsyncClient, name: str) -> httpx.Response:
    return await client.post("/auth/login", json={"username": name, "password": PASSWORD})
