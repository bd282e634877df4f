"""HTTP views on the worker's Faust web server.

``/metrics``, ``/health``, ``/ready``; ``GET`` and ``DELETE /customers/{id}`` (routed to the
worker that owns the customer's partition; erasure needs the bearer token), ``GET /segments`` and ``GET /segments/{id}`` (the model this worker
scores with). Errors are JSON: ``{"error": code, "detail": text}``.
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING, Any

import faust.web

from stream.adapters.metrics import CONTENT_TYPE
from stream.adapters.owner import settled, to_owner
from stream.core.census import Census
from stream.core.model import SegmentModel
from stream.core.state import CustomerState, StateDecodeError, encoded_size

if TYPE_CHECKING:
    from stream.adapters.app import Service

log = logging.getLogger(__name__)


def is_ready(svc: Service) -> bool:
    """Settled (`stream.adapters.owner.settled`: no rebalance, table recovered, not stopping),
    partitions assigned, and the newest model that existed at start-up loaded (none is needed
    before the trainer has published one)."""
    app = svc.app
    assigned = bool(app.consumer.assignment()) if app.consumer else False
    return settled(svc) and assigned and svc.model_feed.caught_up.is_set()


def consumer_lags(svc: Service) -> dict[tuple[str, int], int]:
    """Records not yet read per assigned input partition: the high watermark of the latest
    Fetch response (right on Tansu too, unlike its ListOffsets) minus the next offset to read;
    a partition whose position is not known yet is left out."""
    consumer: Any = svc.app.consumer
    if consumer is None:
        return {}
    lags = {}
    for tp in consumer.assignment():
        if tp.topic not in svc.stream_of_topic:
            continue
        try:
            high = consumer.highwater(tp)
        except Exception:  # e.g. assignment changing under us: skip it this scrape
            log.debug("no high watermark for %s[%d]", tp.topic, tp.partition)
            continue
        if high is None:
            continue
        read = consumer._read_offset.get(tp)
        committed = consumer._committed_offset.get(tp)
        if read is None and committed is None:
            # Just assigned, its committed offset not fetched yet (or nothing committed nor read
            # yet): counting from offset 0 reported the whole topic (90,144 records on a
            # worker a few dozen behind, at each rebalance). No figure beats a wrong one.
            continue
        position = read + 1 if read is not None else committed
        lags[(tp.topic, tp.partition)] = max(int(high) - position, 0)
    return lags


def error(web: Any, status: int, code: str, detail: str) -> Any:
    """A JSON error response."""
    return web.json({"error": code, "detail": detail}, status=status)


def segment_profile(
    model: SegmentModel, segment_id: int, census: Census, micro: bool = False
) -> dict[str, Any]:
    """A segment as the API shows it: size and share over the whole cluster (from the change
    feed), ``training_share`` of the model's training mass; with ``micro``, its micro-segments
    and its movement in and out over the census window."""
    total = sum(s.weight for s in model.segments) or 1.0
    s = model.segment(segment_id)
    assert s is not None
    sizes = census.sizes()
    live = sum(sizes.get(x.id, 0) for x in model.segments) or 1
    out: dict[str, Any] = {
        "segment_id": s.id,
        "name": s.name,
        "size": sizes.get(s.id, 0),
        "share": round(sizes.get(s.id, 0) / live, 4),
        "traits": s.traits,
        "value_tier": s.value_tier,
        "suggested_action": s.action,
        "training_share": round(s.weight / total, 4),
        "micro_segment_ids": [m.id for m in s.micro],
    }
    if micro:
        msizes = census.micro_sizes()
        out["micro_segments"] = [{"id": m.id, "size": msizes.get(m.id, 0), "centroid": m.centroid}
                                 for m in s.micro]  # fmt: skip
        # members still in a micro-segment an update replaced (re-placed when next scored)
        out["micro_pending"] = out["size"] - sum(m["size"] for m in out["micro_segments"])
        out["centroid"] = s.centroid
        out["movement"] = census.movement(s.id)
    return out


def check_token(svc: Service, web: Any, request: Any) -> Any:
    """None if the request carries the erasure bearer token; else the refusal (the token itself
    is never logged or echoed)."""
    token = svc.settings.api_token
    if token is None:
        return error(web, 403, "erasure_disabled", "set MICROSEG_API_TOKEN to allow erasure")
    given = request.headers.get("Authorization", "")
    want = f"Bearer {token.get_secret_value()}"
    if not hmac.compare_digest(given.encode(), want.encode()):
        return error(web, 401, "unauthorized", "a valid bearer token is required")
    return None


def register(svc: Service) -> None:
    """Attach the views to ``svc.app``."""
    app = svc.app

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        svc.metrics.ready.set(1 if is_ready(svc) else 0)
        n = svc.assigner.customers()
        svc.metrics.refresh(consumer_lags(svc), n, n * encoded_size(), svc.assigner.segment_sizes())
        if svc.aligner is not None:
            pacer = svc.aligner.pacer
            svc.metrics.aligned(
                svc.aligner.held, svc.aligner.forced, pacer.timeouts if pacer is not None else 0
            )
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
    class Customer(faust.web.View):
        """One customer: look-up and erasure, each answered by the owning worker
        (`stream.adapters.owner`: 503 while that cannot be done right)."""

        async def get(self, request: Any, customer_id: str) -> Any:
            return await to_owner(svc, self, request, customer_id, Customer._get)

        async def delete(self, request: Any, customer_id: str) -> Any:
            return await to_owner(svc, self, request, customer_id, Customer._delete)

        async def _get(self, request: Any, customer_id: str) -> Any:
            raw = svc.customers.get(customer_id.encode())
            if raw is None:
                return error(self.web, 404, "not_found", "no such customer")
            try:
                state = CustomerState.decode(raw)
            except StateDecodeError:
                return error(self.web, 500, "unreadable_state", "the stored state cannot be read")
            return self.web.json(svc.segmenter.describe(customer_id, state))

        async def _delete(self, request: Any, customer_id: str) -> Any:
            refused = check_token(svc, self.web, request)
            if refused is not None:
                return refused
            if svc.customers.get(customer_id.encode()) is None:
                return error(self.web, 404, "not_found", "no such customer (or already erased)")
            await svc.erasure_topic.send(key=customer_id.encode(), value=b"{}")
            return self.web.json({"status": "accepted", "customer_id": customer_id}, status=202)

    @app.page("/segments")
    async def segments(web: Any, request: Any) -> Any:
        model = svc.segmenter.model
        if model is None:
            return web.json({"model_version": 0, "segments": []})
        return web.json(
            {
                "model_version": model.version,
                "trained_at_ms": model.trained_at,
                "customers": sum(svc.change_feed.census.sizes().values()),
                "segments": [
                    segment_profile(model, s.id, svc.change_feed.census) for s in model.segments
                ],
            }
        )

    @app.page("/segments/{segment_id}")
    async def segment(web: Any, request: Any, segment_id: str) -> Any:
        model = svc.segmenter.model
        if model is None or not segment_id.isdigit() or not model.segment(int(segment_id)):
            return error(web, 404, "not_found", "no such live segment")
        body = segment_profile(model, int(segment_id), svc.change_feed.census, micro=True)
        return web.json({"model_version": model.version, **body})
