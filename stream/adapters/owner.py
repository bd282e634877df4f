"""Routing ``/customers/{id}`` to the worker that owns the customer, honest during rebalances.

A customer's state lives with the worker that owns its partition; any worker takes the request
and forwards it there (Faust's table metadata names each partition's owner). Faust's own
``app.table_route`` answered wrongly while workers joined and left (measured with three workers,
one stopped with SIGTERM while customers were looked up: 830 answers right, 2 ``404 not found``
for customers that exist, 44 plain-text 500s with a ``ConnectionRefusedError`` traceback logged
for each): the new owner answered from a table still being recovered, and requests were
forwarded to a worker that had gone.

`to_owner` answers ``503 {"error": "unavailable"}`` with ``Retry-After`` instead, whenever the
answer could be wrong:

* this worker is rebalancing, recovering its table, or stopping;
* no worker owns the customer's partition yet;
* the owner named is this worker, but the partition is not among its active ones (yet);
* the owner does not answer within `FORWARD_TIMEOUT_S`, or refuses the connection;
* a request already forwarded once would be forwarded again (both sides' metadata disagree).

A ``404 not_found`` therefore means the owner, settled, has no such customer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from faust.types import TP
from yarl import URL

if TYPE_CHECKING:
    from stream.adapters.app import Service

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
"""What ``Retry-After`` says: a rebalance takes 2–10 s (a worker joining, leaving, killed)."""
FORWARD_TIMEOUT_S = 10.0
"""How long a forwarded request may take before the answer is 503."""
FORWARDED = "X-Microseg-Forwarded"
"""Marks a request one worker forwarded to another; it is never forwarded again."""

Handler = Callable[[Any, Any, str], Awaitable[Any]]


def unavailable(web: Any, detail: str) -> Any:
    """``503 {"error": "unavailable", "detail": …}`` with ``Retry-After``."""
    return web.json(
        {"error": "unavailable", "detail": detail},
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def _ident(url: URL) -> tuple[str, int]:
    return (url.host if url.scheme else url.path) or "", int(url.port or 80)


def settled(svc: Service) -> bool:
    """Whether this worker is neither rebalancing, nor recovering its table, nor stopping (its
    store closes before its web server: a look-up then found nobody, 404)."""
    app: Any = svc.app
    return bool(
        not app.rebalancing
        and app.tables.recovery.completed.is_set()
        and not app.should_stop
        and not svc.customers.should_stop
    )


async def to_owner(
    svc: Service, view: Any, request: Any, customer_id: str, handler: Handler
) -> Any:
    """Answer with ``handler(view, request, customer_id)`` if this worker owns the customer,
    else with the owner's answer (see the module docstring for when it is 503)."""
    app: Any = svc.app
    web = view.web
    if not settled(svc):
        return unavailable(
            web, "the workers are rebalancing (or this one is stopping); retry shortly"
        )
    table = svc.customers
    topic = table.changelog_topic.get_topic_name()
    tp: TP = app.producer.key_partition(topic, customer_id.encode())
    try:
        owner = URL(str(app.router.key_store(table.name, customer_id)))
    except KeyError:
        return unavailable(web, "no worker owns this customer's partition yet")
    if _ident(owner) == _ident(URL(str(app.conf.canonical_url))):
        if not app.assignor.is_active(tp):
            return unavailable(web, "this customer's partition is moving to this worker")
        return await handler(view, request, customer_id)
    if request.headers.get(FORWARDED):
        return unavailable(web, "the workers disagree on who owns this customer; retry shortly")
    return await _forward(svc, web, request, owner)


async def _forward(svc: Service, web: Any, request: Any, owner: URL) -> Any:
    app: Any = svc.app
    host, port = _ident(owner)
    url = request.url.with_host(host).with_port(port)
    headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
    headers[FORWARDED] = "1"
    timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
    try:
        async with app.http_client.request(
            method=request.method, url=url, headers=headers, timeout=timeout
        ) as response:
            body = await response.read()
            kept = {k: response.headers[k] for k in ("Retry-After",) if k in response.headers}
            return web.bytes(
                body, content_type=response.content_type, status=response.status, headers=kept
            )
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        log.info("the owner at %s:%d did not answer (%s)", host, port, type(exc).__name__)
        return unavailable(web, "the worker that owns this customer did not answer; retry shortly")
