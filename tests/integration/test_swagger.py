"""Documentation pages and the OpenAPI document."""

from __future__ import annotations

import httpx

from tests.support.backends import backend_independent

pytestmark = backend_independent


async def test_swagger_ui_is_served_with_local_assets(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger-ui-bundle.js" in response.text
    assert "cdn" not in response.text.lower()
    asset = response.text.split('src="')[1].split('"')[0]
    assert (await client.get(asset)).status_code == 200


async def test_redoc_is_served_with_local_assets(client: httpx.AsyncClient) -> None:
    response = await client.get("/redoc")
    assert response.status_code == 200
    assert "redoc.standalone.js" in response.text
    assert "cdn" not in response.text.lower()


async def test_openapi_documents_every_endpoint_and_its_errors(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in ("/auth/register", "/auth/login", "/auth/refresh", "/users/me", "/health"):
        assert path in paths
    register = paths["/auth/register"]["post"]
    assert {"201", "400", "409"} <= set(register["responses"])
    me = paths["/users/me"]["get"]
    assert "401" in me["responses"]
    assert me["security"]
    error_ref = register["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    assert error_ref.endswith("/ErrorResponse")


async def test_swagger_ui_and_redoc_assets_are_all_served_locally(
    client: httpx.AsyncClient,
) -> None:
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        for attribute in ('src="', 'href="'):
            for url in html.split(attribute)[1:]:
                url = url.split('"')[0]
                assert url.startswith("/"), f"{page} loads {url} from elsewhere"
                assert (await client.get(url)).status_code == 200, url


async def test_redoc_page_keeps_images_and_fetches_on_this_origin(
    client: httpx.AsyncClient,
) -> None:
    # ReDoc's bundle asks cdn.redoc.ly for a logo on every view; the policy stops it.
    policy = (await client.get("/redoc")).headers["Content-Security-Policy"]
    assert "img-src 'self' data:" in policy
    assert "connect-src 'self'" in policy


async def test_redoc_bundle_names_no_other_host_and_revalidates(client: httpx.AsyncClient) -> None:
    bundle = await client.get("/docs/redoc.standalone.js")
    assert bundle.status_code == 200
    assert b"cdn.redoc.ly" not in bundle.content
    assert bundle.headers["Content-Type"].startswith("text/javascript")
    again = await client.get(
        "/docs/redoc.standalone.js", headers={"If-None-Match": bundle.headers["ETag"]}
    )
    assert again.status_code == 304
    assert again.content == b""
