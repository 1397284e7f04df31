"""The server manager's advert of its payload file store: where the files live, and the token that proves it.

`LocalServer.start` calls `advertise`: it creates the store's folder (0700) and a random token written into it
(`STORE_TOKEN`, 0600), and records both in the server itself (`tensorlab_server.payload_store`, one document
read by `_id`). Clients read the advert at connect (payloads/payload_files.py `discover`) and use the files
only where they find that token.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Any

from .private_files import private_dir, write_private

SERVER_DB = "tensorlab_server"
ADVERT = "payload_store"
ADVERT_ID = "files"
TOKEN_FILE = "STORE_TOKEN"


def advertise(client: Any, root: Path) -> None:
    """Called by the server manager: create the store's folder and token and tell the server about them.
    An existing advert for the same folder is kept (its token stays valid for running clients). The folder is
    made 0700 (clients refuse a looser one)."""
    private_dir(root)
    adverts = client[SERVER_DB][ADVERT]
    current = adverts.find_one({"_id": ADVERT_ID}) or {}
    token_file = root / TOKEN_FILE
    if current.get("root") == str(root) and token_file.exists() and token_file.read_text() == current.get("token"):
        return
    token = secrets.token_hex(16)
    temporary = root / f".{TOKEN_FILE}.tmp"
    write_private(temporary, token.encode())
    os.replace(temporary, token_file)
    adverts.replace_one({"_id": ADVERT_ID}, {"_id": ADVERT_ID, "root": str(root), "token": token,
                                             "host": socket.gethostname()}, upsert=True)
