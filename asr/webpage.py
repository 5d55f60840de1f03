"""The live-captions page that `asr serve` answers at `/`: static files shipped in asr/web/ (no build step, nothing
fetched from elsewhere), served by the WebSocket server's process_request hook to plain HTTP GETs. A request that
asks for a WebSocket upgrade is left to the handshake, whatever its path, so the page's own stream to `/` works."""

from __future__ import annotations

import functools
from importlib import resources

FILES = {  # URL path -> (file in asr/web/, Content-Type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/captions.js": ("captions.js", "text/javascript; charset=utf-8"),
    "/pcm-worklet.js": ("pcm-worklet.js", "text/javascript; charset=utf-8"),
    "/captions.css": ("captions.css", "text/css; charset=utf-8"),
}

# Everything the page loads or connects to is on this origin; it may not be framed by other sites.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # a new version of the server serves its own page at once
}


@functools.cache
def _text(name: str) -> str:
    return resources.files("asr").joinpath("web", name).read_text(encoding="utf-8")


def is_upgrade(request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def route(request) -> str:
    """The request's path as the server routes it: no query, no trailing slash ("/" stays "/")."""
    return request.path.split("?", 1)[0].rstrip("/") or "/"


def respond(connection, status: int, body: str, content_type: str):
    """An HTTP response with its own Content-Type (websockets' respond() says text/plain)."""
    response = connection.respond(status, body)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    return response


def page_response(connection, request):
    """The response for one of the page's files, or None for every other request (the server's other routes)."""
    if is_upgrade(request):
        return None
    entry = FILES.get(route(request))
    if entry is None:
        return None
    name, content_type = entry
    response = respond(connection, 200, _text(name), content_type)
    for key, value in HEADERS.items():
        response.headers[key] = value
    return response
