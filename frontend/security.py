"""Where the frontend may send a browser: return URLs and the pages' Content-Security-Policy."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import current_app

# What a CSP host-source may name (CSP3 §2.3.1): no IPv6 literals, no userinfo.
_CSP_HOST = re.compile(r"^[a-z0-9.-]+$")


def origin(address: str) -> str:
    """`scheme://host[:port]` of an absolute URL, lower-cased, as browsers compare origins."""
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.netloc}".lower()


def safe_return_url(value: str | None) -> str:
    """Follow only a path on this site or an absolute URL on the API or web origin; else `/`."""
    # Browsers read `\` as `/` and drop tabs and newlines, turning `/\evil` into `//evil`.
    if not value or any(ch == "\\" or ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in value):
        return "/"
    if value.startswith("/"):
        return "/" if value.startswith("//") else value
    config = current_app.config
    trusted = {origin(config["PUBLIC_API_ADDRESS"]), origin(config["PUBLIC_WEB_ADDRESS"])}
    try:
        return value if origin(value) in trusted else "/"
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return "/"


def csp_source(url: str) -> str | None:
    """The CSP source expression matching `url`'s origin, or None when it is not a web URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        return None
    if not _CSP_HOST.match(host):
        # A host-source cannot name an IPv6 literal; its scheme is the narrowest source that can.
        return f"{parts.scheme}:"
    return f"{parts.scheme}://{host}" + ("" if port is None else f":{port}")


def content_security_policy(*destinations: str | None) -> str:
    """The pages' policy; `destinations` are where a form posted from the page may redirect to.

    Chromium applies form-action to every redirect that follows a form post, so a page whose form
    ends at the API or at an OAuth client's redirect URI must name that origin.
    """
    config = current_app.config
    candidates = ["'self'", csp_source(config["PUBLIC_API_ADDRESS"])]
    candidates += [csp_source(url) for url in destinations if url]
    form_action = " ".join(dict.fromkeys(source for source in candidates if source))
    return f"default-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action {form_action}"
