"""HTTP views on the worker's Faust web server.

``/metrics``, ``/health``, ``/ready``; ``GET /customers/{id}`` (routed to the worker that owns
the customer's partition), ``GET /segments`` and ``GET /segments/{id}`` (the model this worker
scores with). Errors are JSON: ``{"error": code, "detail": text}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stream.adapters.metrics import CONTENT_TYPE
from stream.core.model import SegmentModel
from stream.core.state import CustomerState, StateDecodeError

if TYPE_CHECKING:
    from stream.adapters.app import Service


def is_ready(svc: Service) -> bool:
    """Partitions assigned, table recovery finished, and the newest model that existed at
    start-up loaded (none is needed before the trainer has published one)."""
    app = svc.app
    tables: Any = app.tables
    recovered = bool(tables.recovery.completed.is_set())
    assigned = bool(app.consumer.assignment()) if app.consumer else False
    model = svc.model_feed.caught_up.is_set()
    return bool(recovered and assigned and model and not app.rebalancing)


def error(web: Any, status: int, code: str, detail: str) -> Any:
    """A JSON error response."""
    return web.json({"error": code, "detail": detail}, status=status)


def segment_profile(model: SegmentModel, segment_id: int, micro: bool = False) -> dict[str, Any]:
    """A segment as the API shows it (share: of the model's training mass)."""
    total = sum(s.weight for s in model.segments) or 1.0
    s = model.segment(segment_id)
    assert s is not None
    out: dict[str, Any] = {
        "segment_id": s.id,
        "name": s.name,
        "traits": s.traits,
        "value_tier": s.value_tier,
        "suggested_action": s.action,
        "training_share": round(s.weight / total, 4),
        "micro_segment_ids": [m.id for m in s.micro],
    }
    if micro:
        out["micro_segments"] = [{"id": m.id, "centroid": m.centroid} for m in s.micro]
        out["centroid"] = s.centroid
    return out


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
        model = svc.segmenter.model
        body = {"ready": ok, "model_version": model.version if model else 0}
        return web.json(body, status=200 if ok else 503)

    @app.page("/customers/{customer_id}")
    @app.table_route(table=svc.customers, match_info="customer_id")
    async def customer(web: Any, request: Any, customer_id: str) -> Any:
        raw = svc.customers.get(customer_id.encode())
        if raw is None:
            return error(web, 404, "not_found", "no such customer")
        try:
            state = CustomerState.decode(raw)
        except StateDecodeError:
            return error(web, 500, "unreadable_state", "the stored state cannot be read")
        return web.json(svc.segmenter.describe(customer_id, state))

    @app.page("/segments")
    async def segments(web: Any, request: Any) -> Any:
        model = svc.segmenter.model
        if model is None:
            return web.json({"model_version": 0, "segments": []})
        return web.json(
            {
                "model_version": model.version,
                "trained_at_ms": model.trained_at,
                "segments": [segment_profile(model, s.id) for s in model.segments],
            }
        )

    @app.page("/segments/{segment_id}")
    async def segment(web: Any, request: Any, segment_id: str) -> Any:
        model = svc.segmenter.model
        if model is None or not segment_id.isdigit() or not model.segment(int(segment_id)):
            return error(web, 404, "not_found", "no such live segment")
        body = segment_profile(model, int(segment_id), micro=True)
        return web.json({"model_version": model.version, **body})
