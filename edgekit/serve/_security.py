"""Who may call the server and how much they may send.

A bearer token (from ``EDGEKIT_SERVE_TOKEN`` or ``--token-file``, trimmed of white space on
both sides) guards every model and metrics route; the health probes stay open for load
balancers. The server will not bind a non-loopback address without a token unless told
``--insecure``, nor with a token shorter than ``MIN_TOKEN_CHARS``. Bodies are capped while
they stream in, so an oversized upload is refused before it is held in memory.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import socket
from pathlib import Path

from .._errors import EdgekitError

TOKEN_ENV = "EDGEKIT_SERVE_TOKEN"
OPEN_PATHS = ("/healthz", "/readyz")
MIN_TOKEN_CHARS = 16  # for a non-loopback bind; `python -c "import secrets; print(secrets.token_urlsafe(32))"`


def read_token(token_file: Path | None = None, env: str = TOKEN_ENV) -> str | None:
    """The token from ``token_file`` (first line) or the environment; None when neither."""
    if token_file is not None:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise EdgekitError(f"cannot read --token-file {token_file}: {exc.strerror}",
                               "give a readable file holding the token on its first line") from None
        if not token:
            raise EdgekitError(f"--token-file {token_file} is empty", "write the token into it")
        return token
    value = os.environ.get(env)
    if value and not value.strip():
        raise EdgekitError(f"${env} holds only white space", "set it to the token, or unset it for no token")
    return value.strip() if value else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


def check_bind(host: str, token: str | None, insecure: bool) -> None:
    """Refuse to expose an unauthenticated server, or one behind a guessable token, beyond this machine."""
    if is_loopback(host):
        return
    if token and len(token) < MIN_TOKEN_CHARS:
        raise EdgekitError(f"refusing to listen on {host} with a {len(token)}-character token: a public server "
                           f"needs a token of at least {MIN_TOKEN_CHARS} characters",
                           'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"')
    if token or insecure:
        return
    raise EdgekitError(f"refusing to listen on {host} without a token: anyone who can reach it could use the model",
                       f"set {TOKEN_ENV} or pass --token-file FILE; or --insecure if the network is trusted")


def token_ok(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.strip().encode())


class GuardMiddleware:
    """ASGI middleware: body-size cap (413) and bearer-token check (401), before any route.

    Pure ASGI rather than a FastAPI dependency so the cap applies while the body streams
    (Content-Length is checked up front; chunked bodies are counted as they arrive).
    """

    def __init__(self, app, token: str | None, max_body: int, on_reject=None):
        self.app, self.token, self.max_body, self.on_reject = app, token, max_body, on_reject

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        if self.token and path not in OPEN_PATHS and not token_ok(headers.get("authorization"), self.token):
            why = "no bearer token" if "authorization" not in headers else "the bearer token is wrong"
            return await self._reject(send, 401, f"{why}; send 'Authorization: Bearer <token>'", "auth",
                                      [(b"www-authenticate", b'Bearer realm="edgekit"')])
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await self._reject(send, 413, self._too_big(int(length)), "too_large")
        seen = 0
        too_big = False

        async def capped_receive():
            nonlocal seen, too_big
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    too_big = True
                    raise BodyTooLarge(self._too_big(seen))
            return message

        started = False

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send, 413, self._too_big(seen), "too_large")
        except Exception:
            if too_big and not started:  # the app wrapped our exception
                await self._reject(send, 413, self._too_big(seen), "too_large")
            else:
                raise

    def _too_big(self, size: int) -> str:
        return (f"the body is over the limit: {size} bytes > {self.max_body} "
                f"({self.max_body / 2**20:g} MB; the server's --max-body-mb)")

    async def _reject(self, send, status: int, detail: str, kind: str, extra=()):
        if self.on_reject:
            self.on_reject(status, kind)
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), *extra]})
        await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    """Raised from ``receive`` once a body passes the cap; the predict route turns it into a 413."""
