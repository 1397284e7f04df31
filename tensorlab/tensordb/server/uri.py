"""Connection-string helpers; every place that shows a URI goes through `mask_uri`."""

from __future__ import annotations

import os
import re
from urllib.parse import quote_plus, unquote_plus

from ...errors import InvalidInput

URI_ENV_VAR = "TENSORLAB_MONGODB_URI"
MEMORY_SCHEME = "memory://"
MASK = "****"

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)
_URI_IN_TEXT = re.compile(r"[a-z][a-z0-9+.-]*://\S*", re.I)


def _split_credentials(uri: str) -> tuple[str, str, str | None, str] | None:
    """(scheme, user, password or None, rest after '@') or None without credentials.

    The credentials end at the last '@', not at the first '/' or '?': a password with unescaped '/', ':',
    '?' or '@' (which pymongo refuses) must still be recognised, so that it is never shown. An option
    value holding '@' then hides more than the password, which is the safe way to be wrong."""
    scheme = _SCHEME.match(uri)
    if not scheme:
        return None
    at = uri.rfind("@")
    if at < scheme.end():
        return None
    user, colon, password = uri[scheme.end():at].partition(":")
    return scheme.group(0), user, password if colon else None, uri[at + 1:]


def mask_uri(uri: str) -> str:
    """Return `uri` with any password replaced by ****, safe to print or log."""
    parts = _split_credentials(uri)
    if parts is None or parts[2] is None:
        return uri
    scheme, user, _password, rest = parts
    return f"{scheme}{user}:{MASK}@{rest}"


def mask_secret(text: str, secret: str | None) -> str:
    """Remove a secret (raw and URL-quoted) from an arbitrary message."""
    if not secret:
        return text
    for form in sorted({secret, quote_plus(secret), unquote_plus(secret)}, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def mask_uris_in(text: str) -> str:
    """`text` with the password of every URI in it replaced by ****."""
    return _URI_IN_TEXT.sub(lambda match: mask_uri(match.group(0)), text)


def uri_password(uri: str) -> str | None:
    parts = _split_credentials(uri)
    return parts[2] if parts else None


def uri_from_environment() -> str | None:
    value = os.environ.get(URI_ENV_VAR, "").strip()
    return value or None


def with_password_from(uri: str | None, variable: str) -> str:
    """`uri` (else $TENSORLAB_MONGODB_URI) with the password that the environment variable `variable` holds, so
    that no password has to appear on a command line, where every user of the machine sees it (`ps`)."""
    password = os.environ.get(variable)
    if password is None:
        raise InvalidInput(f"The environment variable {variable!r}, named to hold the password, is not set.")
    uri = uri or uri_from_environment()
    parts = _split_credentials(uri) if uri else None
    if parts is None or not parts[1]:
        shown = mask_uri(uri) if uri else f"none (no URI given and {URI_ENV_VAR} is not set)"
        raise InvalidInput(f"A password from {variable} needs a URI that names the user, such as "
                           f"'mongodb://USER@host/'; the URI is {shown}.")
    scheme, user, _password, rest = parts
    return f"{scheme}{user}:{quote_plus(password)}@{rest}"


def seed_style_uri(ip: str, port: int, user_name: str | None, password: str | None) -> str:
    """Build a mongodb:// URI from the seed constructor's separate arguments."""
    if isinstance(port, bool) or not isinstance(port, (int, str)) or not str(port).isdigit() \
            or not 0 < int(port) < 65536:
        raise InvalidInput(f"Invalid value for argument `port`: {port!r}. Expected a TCP port number such as 27017.")
    if not isinstance(ip, str) or not ip.strip() or any(c in ip for c in "/@?# "):
        raise InvalidInput(f"Invalid value for argument `ip`: {ip!r}. Expected a host name or address such as "
                           "'127.0.0.1'.")
    credentials = ""
    if user_name:
        credentials = quote_plus(user_name)
        if password is not None:
            credentials += ":" + quote_plus(password)
        credentials += "@"
    return f"mongodb://{credentials}{ip}:{int(port)}/"
