"""Secrets: credentials kept out of every text the product stores, and the user's own signing key.

* ``strip_credentials`` removes a ``user:password@`` part from URLs and the value of secret-looking
  query parameters (``?api_key=…``), so a key typed into a model URL reaches no config, report,
  fingerprint, log line or error message. ``scrub`` does the same through a JSON-like value and also
  drops values under secret-looking keys.
* ``seal`` / ``unseal``: an HMAC-SHA256 over a cache entry with a per-user key, checked before the
  entry is read, so a file someone else planted in a cache folder is refused, never deserialised.
  The key lives in the user's config folder (``AOD_CONFIG_DIR``, default ``~/.config/aod-studio``),
  made on first use with mode 0600. A key file another user owns, or that others can read, is not
  trusted: entries are then neither read nor written (``signing_key`` returns None and says why).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets as _random
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SECRET_KEYS = ("api_key", "apikey", "key", "token", "password", "secret", "authorization")
REDACTED = "<redacted>"
KEY_FILE = "cache.key"
MAGIC = b"AODSEAL1"

# scheme://user:password@host -> scheme://host ; also scheme://token@host
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@?#]+)@")
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&;](?:api[_-]?key|key|token|access[_-]?token|password|secret|sig|signature)=)(?P<value>[^&;#\s\"']+)",
    re.IGNORECASE,
)


def strip_credentials(text: str) -> str:
    """``text`` with URL credentials removed (user:password@, and secret query parameters)."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: m["scheme"], text)
    return _QUERY_SECRET.sub(lambda m: m["name"] + REDACTED, text)


def has_credentials(text: str) -> bool:
    return strip_credentials(text) != text


def _secret_key(name: str) -> bool:
    low = name.lower()
    return any(s in low for s in SECRET_KEYS)


def scrub(obj: Any) -> Any:
    """A copy without secrets: values under secret-looking keys are redacted, and every string has
    its URL credentials stripped."""
    if isinstance(obj, dict):
        return {k: (REDACTED if _secret_key(str(k)) and v else scrub(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub(v) for v in obj]
    if isinstance(obj, str):
        return strip_credentials(obj)
    return obj


# -- the per-user signing key --------------------------------------------------------------------


def config_dir() -> Path:
    return Path(os.environ.get("AOD_CONFIG_DIR") or Path.home() / ".config" / "aod-studio")


def _make_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # made meanwhile by another process of this user
    with os.fdopen(fd, "wb") as f:
        f.write(_random.token_bytes(32))
        f.flush()
        os.fsync(f.fileno())


def signing_key() -> bytes | None:
    """This user's cache-signing key (made on first use), or None when it cannot be trusted."""
    path = config_dir() / KEY_FILE
    try:
        if not path.exists():
            _make_key(path)
        st = path.lstat()
        if not path.is_file() or path.is_symlink():
            raise PermissionError("not a regular file")
        if st.st_uid != os.getuid():
            raise PermissionError("owned by another user")
        if st.st_mode & 0o077:
            raise PermissionError(f"readable by others (mode {st.st_mode & 0o777:o})")
        key = path.read_bytes()
        if len(key) < 32:
            raise PermissionError("too short")
        return key
    except OSError as e:
        log.warning("cache signing key %s not used (%s): fitted judge parts are not cached", path, e)
        return None


def seal(data: bytes, key: bytes) -> bytes:
    return MAGIC + hmac.new(key, data, hashlib.sha256).digest() + data


def unseal(blob: bytes, key: bytes) -> bytes | None:
    """The sealed bytes when ``key`` signed them, else None (planted, damaged, or another user's)."""
    head = len(MAGIC) + 32
    if len(blob) < head or not blob.startswith(MAGIC):
        return None
    mac, data = blob[len(MAGIC) : head], blob[head:]
    if not hmac.compare_digest(mac, hmac.new(key, data, hashlib.sha256).digest()):
        return None
    return data
