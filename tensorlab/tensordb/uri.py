"""Connection-string helpers; every place that shows a URI goes through `mask_uri`."""

from __future__ import annotations

import os
import re
from urllib.parse import quote_plus

URI_ENV_VAR = "TENSORLAB_MONGODB_URI"
MEMORY_SCHEME = "memory://"
MASK = "****"

_CREDENTIALS = re.compile(r"^(?P<scheme>[a-z+]+://)(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@", re.I)


def mask_uri(uri: str) -> str:
    """Return `uri` with any password replaced by ****, safe to print or log."""
    match = _CREDENTIALS.match(uri)
    if not match or match.group("password") is None:
        return uri
    return f"{match.group('scheme')}{match.group('user')}:{MASK}@{uri[match.end():]}"


def mask_secret(text: str, secret: str | None) -> str:
    """Remove a secret (raw and URL-quoted) from an arbitrary message."""
    if not secret:
        return text
    for form in {secret, quote_plus(secret)}:
        text = text.replace(form, MASK)
    return text


def uri_password(uri: str) -> str | None:
    match = _CREDENTIALS.match(uri)
    return match.group("password") if match else None


def uri_from_environment() -> str | None:
    value = os.environ.get(URI_ENV_VAR, "").strip()
    return value or None


def seed_style_uri(ip: str, port: int, user_name: str | None, password: str | None) -> str:
    """Build a mongodb:// URI from the seed constructor's separate arguments."""
    credentials = ""
    if user_name:
        credentials = quote_plus(user_name)
        if password is not None:
            credentials += ":" + quote_plus(password)
        credentials += "@"
    return f"mongodb://{credentials}{ip}:{int(port)}/"
