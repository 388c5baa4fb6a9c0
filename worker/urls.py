"""URLs as they may be shown to people: in messages, logs and the demo's story."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_url(url: str) -> str:
    """``url`` without its user name and password (a Redis URL often carries one).

    Never raises: a URL that does not parse is shown as ``(unparseable URL)``, since the
    message it goes into is usually about that very URL. Sentinels' addresses
    (``sentinel://h1:26379;sentinel://h2:26379``) are shown each so.
    """
    if ";" in url:
        return ";".join(safe_url(part) for part in url.split(";"))
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"
    except ValueError:
        return "(unparseable URL)"
