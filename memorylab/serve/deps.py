"""What both route modules (memory_routes.py, openai_routes.py) need: this replica's Ingress, the caller's
tenant, and a deployment's refusal as an HTTP error.

The Ingress is Serve's servable object of the replica answering the request, found through Ray Serve's own
replica context, as Serve's class-based views find it. Tests without Serve override the `current_ingress`
dependency (app.dependency_overrides); `ingress_of_scope` resolves it the same way for ASGI middleware.
"""

from __future__ import annotations

from typing import Any, Optional

from fastapi import Depends, Header, HTTPException

from memorylab.serve.refusal import Refusal


def current_ingress() -> Any:
    """The Ingress deployment instance of this replica."""
    from ray import serve

    return serve.get_replica_context().servable_object


def ingress_of_scope(scope: dict) -> Any:
    """The Ingress, from an ASGI scope (middleware runs outside FastAPI's dependency injection)."""
    app = scope["app"]
    return app.dependency_overrides.get(current_ingress, current_ingress)()


class Unauthorized(Exception):
    """No key, or a key that names no tenant: answered 401 by the app's handler."""


async def tenant_of(authorization: Optional[str] = Header(None), ingress: Any = Depends(current_ingress)) -> str:
    tenant = ingress.keys.tenant_for(authorization)
    if tenant is None:
        raise Unauthorized()
    return tenant


def accepted(result: Any) -> Any:
    """A deployment's reply, or the HTTP error its Refusal stands for."""
    if isinstance(result, Refusal):
        raise HTTPException(status_code=result.status, detail=result.detail)
    return result
