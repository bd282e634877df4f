"""``GET`` / ``DELETE /customers/{id}`` while workers join and leave, without a broker.

The view is the real app's (`build_app`, memory store); Faust's routing metadata (which worker
owns which partition), its rebalancing flag and table recovery are set as a rebalance leaves
them. The owner elsewhere is a real HTTP server on a loopback port, or a port nobody listens on.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web as aioweb
from faust.types import TP
from yarl import URL

from stream.adapters.app import Service, build_app
from stream.adapters.owner import FORWARDED, RETRY_AFTER_S
from stream.core.state import CustomerState
from tests.factories import bare_settings

CUSTOMER = "c-7"
PARTITION = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Producer:
    def key_partition(self, topic: str, key: bytes) -> TP:
        return TP(topic, PARTITION)


@pytest.fixture
def svc(tmp_path: Path) -> Service:
    """A settled worker owning partition 2 (where ``c-7`` lives, stored), at its canonical URL."""
    settings = bare_settings(store="memory://", data_dir=tmp_path, partitions=4)
    svc = build_app(settings, ["127.0.0.1:1"])
    app: Any = svc.app
    app._producer = _Producer()
    app.rebalancing = False
    app.tables.recovery.completed.set()
    state = CustomerState(last_ts=86_400_000, first_ts=0, t0=0)
    svc.customers.data.data[CUSTOMER.encode()] = state.encode()
    return svc


def _own(svc: Service, monkeypatch: pytest.MonkeyPatch, owner: str, active: bool) -> None:
    app: Any = svc.app
    monkeypatch.setattr(app.router, "key_store", lambda table, key: URL(owner))
    monkeypatch.setattr(app.assignor, "is_active", lambda tp: active and tp.partition == PARTITION)


def _request(method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    return SimpleNamespace(
        method=method, url=URL(f"http://127.0.0.1:6066{path}"), headers=headers or {}
    )


async def _answer(svc: Service, method: str, customer: str, headers: dict[str, str]) -> Any:
    view: Any = svc.app.web.views["/customers/{customer_id}"]
    request = _request(method, f"/customers/{customer}", headers)
    try:
        return await getattr(view, method.lower())(request, customer_id=customer)
    finally:
        await svc.app.http_client.close()  # bound to this event loop
        svc.app._http_client = None  # type: ignore[attr-defined]  # a new one for the next loop


def _call(svc: Service, method: str, customer: str = CUSTOMER, **headers: str) -> Any:
    return asyncio.run(_answer(svc, method, customer, headers))


def _body(response: Any) -> dict[str, Any]:
    return json.loads(response.body)  # type: ignore[no-any-return]


def _unavailable(response: Any) -> bool:
    return (
        response.status == 503
        and _body(response)["error"] == "unavailable"
        and response.headers["Retry-After"] == str(RETRY_AFTER_S)
    )


def test_the_settled_owner_answers_and_404_means_no_such_customer(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    _own(svc, monkeypatch, str(svc.app.conf.canonical_url), active=True)
    found = _call(svc, "GET")
    assert found.status == 200 and _body(found)["customer_id"] == CUSTOMER
    missing = _call(svc, "GET", customer="c-nobody")
    assert missing.status == 404 and _body(missing)["error"] == "not_found"


def test_while_rebalancing_recovering_or_stopping_the_answer_is_503_not_404(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    app: Any = svc.app
    _own(svc, monkeypatch, str(app.conf.canonical_url), active=True)
    app.rebalancing = True
    assert _unavailable(_call(svc, "GET", customer="c-nobody"))
    assert _unavailable(_call(svc, "DELETE"))
    app.rebalancing = False
    app.tables.recovery.completed.clear()
    assert _unavailable(_call(svc, "GET", customer="c-nobody"))
    app.tables.recovery.completed.set()
    assert _call(svc, "GET", customer="c-nobody").status == 404
    # A stopping worker closes its store before its web server: "no such customer" then was
    # a store that had closed (seen once in the integration test of a worker leaving).
    svc.customers._stopped.set()
    assert _unavailable(_call(svc, "GET"))


def test_a_partition_named_ours_but_not_yet_active_is_503(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    _own(svc, monkeypatch, str(svc.app.conf.canonical_url), active=False)
    assert _unavailable(_call(svc, "GET", customer="c-nobody"))


def test_a_partition_nobody_owns_yet_is_503(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    def unknown(table: str, key: str) -> URL:
        raise KeyError(TP("x", PARTITION))

    monkeypatch.setattr(svc.app.router, "key_store", unknown)
    assert _unavailable(_call(svc, "GET"))


def test_an_owner_that_is_gone_is_503_without_a_traceback(
    svc: Service, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _own(svc, monkeypatch, f"http://127.0.0.1:{_free_port()}", active=False)
    assert _unavailable(_call(svc, "GET"))
    assert _unavailable(_call(svc, "DELETE", Authorization="Bearer x"))
    assert not any(r.exc_info for r in caplog.records)


def test_a_request_already_forwarded_is_not_forwarded_again(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    _own(svc, monkeypatch, "http://127.0.0.1:1", active=False)
    assert _unavailable(_call(svc, "GET", **{FORWARDED: "1"}))


def test_the_owner_elsewhere_answers_through_this_worker(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Status, body, content type and ``Retry-After`` come back as the owner gave them; the
    forwarded request carries the caller's headers and the forwarding mark."""
    seen: list[Any] = []

    async def owner(request: aioweb.Request) -> aioweb.Response:
        seen.append((request.method, request.path, dict(request.headers)))
        return aioweb.json_response(
            {"error": "unavailable", "detail": "x"}, status=503, headers={"Retry-After": "7"}
        )

    async def scenario() -> Any:
        server = aioweb.Application()
        server.router.add_route("*", "/customers/{customer_id}", owner)
        runner = aioweb.AppRunner(server)
        await runner.setup()
        port = _free_port()
        site = aioweb.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        try:
            _own(svc, monkeypatch, f"http://127.0.0.1:{port}", active=False)
            view: Any = svc.app.web.views["/customers/{customer_id}"]
            request = _request("DELETE", f"/customers/{CUSTOMER}", {"Authorization": "Bearer t"})
            return await view.delete(request, customer_id=CUSTOMER)
        finally:
            await svc.app.http_client.close()
            await runner.cleanup()

    response = asyncio.run(scenario())
    assert response.status == 503 and response.headers["Retry-After"] == "7"
    assert _body(response) == {"error": "unavailable", "detail": "x"}
    [(method, path, headers)] = seen
    assert (method, path) == ("DELETE", f"/customers/{CUSTOMER}")
    assert headers["Authorization"] == "Bearer t" and headers[FORWARDED] == "1"
