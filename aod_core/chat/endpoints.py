"""Which model servers this user trusts with their API key.

A run folder names its model servers (``openai:<model>@<url>`` specs). Resuming a folder from
someone else would send the user's ``OPENAI_API_KEY`` to whatever server that folder names, so a
resume asks first when a server is new to this user: the CLI refuses unless ``--trust-endpoint``,
the app asks for a confirmation.

Trusted are the server in ``OPENAI_BASE_URL`` and every server this user has started a run with or
confirmed (kept in ``trusted-endpoints.json`` in the user's config folder, ``aod_core/secrets.py``).
A server is compared by scheme, host, port and path, without credentials.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterable
from urllib.parse import urlsplit

from aod_core.errors import InputError
from aod_core.files import atomic_write_text
from aod_core.secrets import config_dir, strip_credentials

FILE = "trusted-endpoints.json"
ROLES = ("generator", "judge", "optimizer", "compiler")
_SPEC = re.compile(r"openai:[^@\s]*@(?P<url>\S+)")


def normalise(url: str) -> str:
    """``scheme://host:port/path`` in a canonical form, credentials and query dropped."""
    parts = urlsplit(strip_credentials(url.strip()))
    scheme = (parts.scheme or "").lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"


def endpoints(config: dict[str, Any]) -> list[str]:
    """The servers a run's configuration sends requests to, canonical and in order."""
    found: dict[str, None] = {}
    for role in ROLES:
        spec = config.get(role)
        if isinstance(spec, str):
            for m in _SPEC.finditer(spec):
                found[normalise(m["url"])] = None
    return list(found)


def _stored() -> set[str]:
    try:
        data = json.loads((config_dir() / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {u for u in data if isinstance(u, str)} if isinstance(data, list) else set()


def trusted() -> set[str]:
    out = _stored()
    if os.environ.get("OPENAI_BASE_URL"):
        out.add(normalise(os.environ["OPENAI_BASE_URL"]))
    return out


def untrusted(config: dict[str, Any]) -> list[str]:
    """The run's servers this user has not used or confirmed."""
    known = trusted()
    return [u for u in endpoints(config) if u not in known]


def key_would_be_sent(api_key: str | None = None) -> bool:
    return bool(api_key or os.environ.get("OPENAI_API_KEY"))


def trust(urls: Iterable[str]) -> None:
    """Remember ``urls`` (canonical, from ``endpoints``) as trusted by this user: their own runs,
    or confirmed by them."""
    new = set(urls)
    have = _stored()
    if new <= have:
        return
    path = config_dir() / FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write_text(path, json.dumps(sorted(have | new), indent=2) + "\n")
    except OSError:
        pass  # not remembered: the next resume asks again, which is safe


def check_resume(config: dict[str, Any], *, api_key: str | None = None, confirmed: bool = False) -> None:
    """Refuse (``UntrustedEndpoint``) to resume a run that would send the user's key to a server
    they have not used; ``confirmed`` (``--trust-endpoint``, the app's confirmation) trusts it."""
    if not key_would_be_sent(api_key):
        return  # no key goes anywhere
    new = untrusted(config)
    if not new:
        return
    if confirmed:
        trust(new)
        return
    raise UntrustedEndpoint(new)


class UntrustedEndpoint(InputError):
    def __init__(self, urls: list[str]):
        self.urls = urls
        shown = ", ".join(urls)
        super().__init__(
            f"this run would send your OpenAI API key to {shown}, a server you have not used before: "
            "check the run's config.json, then resume with --trust-endpoint (the app asks for a confirmation)"
        )
