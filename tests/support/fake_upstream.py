"""A stand-in provider on a loopback port, in-process: OpenID Connect discovery, JWKS and a
token endpoint whose ID tokens a test can tamper with, and GitHub's OAuth2 token endpoint
and REST API (`/user`, `/user/emails`).

There is no login page: `authorize(url)` plays the person who signs in and allows, and
returns the code the provider would send back. The token endpoint checks what a real one
checks (client authentication, the code once, its redirect URI, the PKCE verifier).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "authsvc-client"
CLIENT_SECRET = "fake-provider-client-secret"


def new_key() -> tuple[rsa.RSAPrivateKey, str]:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048), secrets.token_hex(4)


@dataclass
class Grant:
    challenge: str
    nonce: str | None
    redirect_uri: str
    subject: str


@dataclass
class FakeUpstream:
    url: str = ""
    key: rsa.RSAPrivateKey = field(default_factory=lambda: new_key()[0])
    kid: str = "k1"
    grants: dict[str, Grant] = field(default_factory=dict)
    # What the next ID token says differently (`iss`, `aud`, `exp`, `nonce`, ...).
    tamper: dict[str, Any] = field(default_factory=dict)
    # Sign the next ID tokens with this key instead (a key the JWKS does not publish).
    foreign_key: rsa.RSAPrivateKey | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    github_user: dict[str, Any] = field(default_factory=dict)
    github_emails: list[dict[str, Any]] = field(default_factory=list)
    jwks_fetches: int = 0
    token_requests: int = 0

    @property
    def issuer(self) -> str:
        return self.url

    def rotate_key(self) -> None:
        """A new signing key, published from now on (the old one is gone)."""
        self.key, self.kid = new_key()

    def authorize(self, authorization_url: str, subject: str = "subject-1") -> str:
        """The person signs in and allows: the code the provider redirects back with."""
        params = {k: v[0] for k, v in parse_qs(urlsplit(authorization_url).query).items()}
        assert params["client_id"] == CLIENT_ID
        assert params["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(
            params["code_challenge"], params.get("nonce"), params["redirect_uri"], subject
        )
        return code

    # --- what the server answers ---------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def jwks(self) -> dict[str, Any]:
        self.jwks_fetches += 1
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, Any]:
        self.token_requests += 1
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if authorization != f"Basic {expected}":
            return 401, {"error": "invalid_client"}
        grant = self.grants.pop(form.get("code", ""), None)
        if grant is None or form.get("redirect_uri") != grant.redirect_uri:
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        answer: dict[str, Any] = {"access_token": secrets.token_urlsafe(16), "token_type": "bearer"}
        if grant.nonce is not None:
            answer["id_token"] = self.id_token(grant)
        return 200, answer

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": grant.subject,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            **self.claims,
            **self.tamper,
        }
        key = self.foreign_key or self.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})


@contextmanager
def fake_upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/.well-known/openid-configuration":
                self._answer(200, fake.discovery())
            elif path == "/jwks":
                self._answer(200, fake.jwks())
            elif path == "/api/user":
                self._answer(200, fake.github_user)
            elif path == "/api/user/emails":
                self._answer(200, fake.github_emails)
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            path = urlsplit(self.path).path
            if path in ("/token", "/login/oauth/access_token"):
                self._answer(*fake.token(form, self.headers.get("Authorization")))
            else:
                self._answer(404, {"error": "not_found"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
