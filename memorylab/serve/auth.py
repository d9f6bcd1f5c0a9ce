"""Bearer API keys bound to tenants.

Keys come from the scenario (`serve.api_keys`) or, overriding it entirely, from MEMORYLAB_API_KEYS
(`tenant:key,tenant:key`) so secrets need not live in a YAML file. A request without a valid key gets 401;
agents are scoped to their tenant (another tenant's agent id is simply another agent), so tenants cannot
probe or claim each other's agent ids.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
from typing import Mapping, Optional, Sequence

from memorylab.errors import MemorylabError

ENV_VAR = "MEMORYLAB_API_KEYS"
_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class AuthConfigError(MemorylabError):
    pass


def parse_keys(spec: str, origin: str = ENV_VAR) -> dict[str, str]:
    """`tenant:key,tenant:key` -> {key: tenant}; a malformed entry is an error naming it (never a key)."""
    keys: dict[str, str] = {}
    for i, entry in enumerate(e.strip() for e in spec.split(",")):
        if not entry:
            continue
        tenant, sep, key = entry.partition(":")
        if not sep or not key:
            raise AuthConfigError(f"{origin}: entry {i + 1} is not tenant:key")
        if not _TENANT.match(tenant):
            raise AuthConfigError(f"{origin}: entry {i + 1}: tenant '{tenant}' may hold only letters, digits, _ . -")
        if len(key) < 8:
            raise AuthConfigError(f"{origin}: entry {i + 1} (tenant '{tenant}'): key shorter than 8 characters")
        if key in keys and keys[key] != tenant:
            raise AuthConfigError(f"{origin}: entry {i + 1}: the same key is given to two tenants")
        keys[key] = tenant
    return keys


def resolve_keys(scenario_keys: Sequence[tuple[str, str]], environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """{key: tenant}, from the environment when MEMORYLAB_API_KEYS is set (even to ''), else the scenario."""
    environ = os.environ if environ is None else environ
    if ENV_VAR in environ:
        return parse_keys(environ[ENV_VAR])
    return {key: tenant for tenant, key in scenario_keys}


DEMO_KEY = "demo-key-change-me"  # scenarios/agent.yaml's: public, so only ever for loopback
MIN_EXPOSED_KEY_CHARS = 16  # `openssl rand -hex 8` and up


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_exposed_keys(host: str, keys: Mapping[str, str]) -> None:
    """Refuse to serve on a host other machines reach (0.0.0.0, an interface's address) with the demo key or
    a short key: a key anyone can read in this repository, or guess, would open every tenant's memory."""
    if is_loopback(host):
        return
    for key, tenant in keys.items():
        if key == DEMO_KEY:
            raise AuthConfigError(f"serve.host {host} is reachable from other machines and tenant '{tenant}' has "
                                  f"the demo key; set MEMORYLAB_API_KEYS=tenant:$(openssl rand -hex 16)")
        if len(key) < MIN_EXPOSED_KEY_CHARS:
            raise AuthConfigError(f"serve.host {host} is reachable from other machines and tenant '{tenant}' has "
                                  f"a key shorter than {MIN_EXPOSED_KEY_CHARS} characters; use a longer one")


class KeyRing:
    def __init__(self, keys: Mapping[str, str]) -> None:
        self._keys = dict(keys)

    def tenant_for(self, authorization: Optional[str]) -> Optional[str]:
        """The tenant of a `Bearer <key>` header, or None. Compared in constant time per key."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        token = token.strip()
        found = None
        for key, tenant in self._keys.items():
            if hmac.compare_digest(key.encode(), token.encode()):
                found = tenant
        return found

    def __len__(self) -> int:
        return len(self._keys)
