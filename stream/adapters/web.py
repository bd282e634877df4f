"""HTTP views on the worker's Faust web server: ``/metrics``, ``/health``, ``/ready``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stream.adapters.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from stream.adapters.app import Service


def is_ready(svc: Service) -> bool:
    """Partitions assigned and table recovery finished."""
    app = svc.app
    tables: Any = app.tables
    recovered = bool(tables.recovery.completed.is_set())
    assigned = bool(app.consumer.assignment()) if app.consumer else False
    return bool(recovered and assigned and not app.rebalancing)


def register(svc: Service) -> None:
    """Attach the views to ``svc.app``."""
    app = svc.app

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        svc.metrics.ready.set(1 if is_ready(svc) else 0)
        # aiohttp refuses a charset inside content_type, so the full type goes in as a header.
        return web.bytes(svc.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready(web: Any, request: Any) -> Any:
        ok = is_ready(svc)
        return web.json({"ready": ok}, status=200 if ok else 503)
