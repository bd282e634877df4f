"""Convert the real public datasets in ``../shared/data`` into microseg's v1 input contract.

Writes gzip JSONL replay files (one contract event per line) into ``stream/data/demo``:

- ``completejourney.jsonl.gz``  purchases + campaign contacts (84.51° Complete Journey)
- ``online_retail_ii.jsonl.gz`` purchases + refunds (UCI Online Retail II)
- ``rees46.jsonl.gz``           clickstream + purchases (REES46 / Open CDP)
- ``hillstrom.jsonl.gz``        e-mail campaign outcomes on a synthetic clock (Hillstrom 2008)
- ``bad_events.jsonl``          hand-written malformed lines for the dead-letter demo (plain text)

Every mapping choice is documented next to the code that makes it and in
``stream/data/demo/SOURCES.md``. The script is deterministic: the same input gives byte-identical
output (lines sorted by event time, then ``event_id``; compact JSON with a fixed key order; gzip
with ``mtime=0`` and no file name in the header). Every emitted event is checked with
``stream.core.events.parse_event`` before it is written, and the event counts per file and type
are printed at the end.

Usage (from the repository root)::

    .venv/bin/python scripts/convert_data.py [--shared ../shared/data] [--out stream/data/demo]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from stream.core.events import parse_event  # noqa: E402

Event = dict[str, Any]

# --- downsampling (keeps stream/data/demo under ~3 MB) ------------------------------------------
CJ_HOUSEHOLDS = 250
"""Complete Journey: keep the first N households by numeric household_id (of 250)."""
HILLSTROM_CUSTOMERS = 3000
"""Hillstrom: keep the first N customers by numeric customer_id (of 16,000)."""

# --- synthetic clock for Hillstrom -------------------------------------------------------------
HILL_T0 = datetime(2008, 3, 3, 9, 0, 0, tzinfo=UTC)
"""The (invented) send time of the Hillstrom campaign."""

# Online Retail II stock codes that are not products: postage, manual, discount, carriage,
# adjustment (and a few more from the full UCI file, for safety).
ORI_NON_PRODUCT = frozenset(
    {"POST", "DOT", "M", "D", "C2", "ADJUST", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "S", "B"}
)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def read_csv(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a gzip CSV file with a header row."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh)


def money(x: float) -> float:
    """Round a money sum to cents (removes float noise such as 0.30000000000000004)."""
    return round(x + 0.0, 2) + 0.0


def iso(ts: datetime) -> str:
    """RFC 3339 with offset, seconds precision (``2017-01-01T15:14:16+00:00``)."""
    return ts.isoformat(timespec="seconds")


def stable_hash(*parts: object) -> int:
    """A seeded, platform-independent 64-bit hash (Python's ``hash`` is salted per process)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _last_sunday(year: int, month: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - 6) % 7)


_GMT = UTC
_BST = timezone(timedelta(hours=1))


def uk_local(naive: datetime) -> datetime:
    """Attach the UK offset (GMT +00:00 or BST +01:00) to a naive UK wall-clock time.

    The EU/UK rule since 1996: BST from the last Sunday of March 01:00 GMT to the last Sunday of
    October 01:00 GMT. Coded by hand so no tz database is needed (output must not depend on the
    machine's tzdata). Wall-clock times in the skipped hour are read as GMT; those in the repeated
    hour as BST. The Online Retail II slice has invoices only between 06:00 and 19:59, so neither
    edge case occurs.
    """
    start = datetime.combine(_last_sunday(naive.year, 3), datetime.min.time()) + timedelta(hours=2)
    end = datetime.combine(_last_sunday(naive.year, 10), datetime.min.time()) + timedelta(hours=2)
    return naive.replace(tzinfo=_BST if start <= naive < end else _GMT)


def sort_key(event: Event) -> tuple[datetime, str]:
    return datetime.fromisoformat(event["ts"]), event["event_id"]


def write_jsonl_gz(path: Path, events: list[Event]) -> None:
    """Validate, sort by (ts instant, event_id) and write reproducible gzip JSONL."""
    events = sorted(events, key=sort_key)
    ids = [e["event_id"] for e in events]
    if len(set(ids)) != len(ids):
        dup = next(i for i, n in Counter(ids).items() if n > 1)
        raise SystemExit(f"{path.name}: duplicate event_id {dup!r}")
    buf = io.BytesIO()
    for e in events:
        line = json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode()
        parse_event(line)  # raises if the converter ever emits a non-contract event
        buf.write(line + b"\n")
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
    ):
        gz.write(buf.getvalue())


# ----------------------------------------------------------------------------------------------
# Complete Journey (84.51°)
# ----------------------------------------------------------------------------------------------


def convert_completejourney(src: Path, stats: Counter[str]) -> list[Event]:
    """Baskets -> ``purchase``; campaigns -> ``email_sent``; redemptions -> ``email_click``.

    - Households: the first ``CJ_HOUSEHOLDS`` by numeric id.
    - Time: ``transaction_timestamp`` has no zone; its wall clock is kept and labelled UTC
      (``+00:00``). Dates (campaign start, redemption) become 00:00:00 / 12:00:00 UTC.
    - Lines with quantity 0 (coupon / void lines) are left out of ``items`` (the contract needs
      quantity >= 1) but their sales_value and discounts still count in ``amount``/``discount``.
    """
    households = sorted({int(r["household_id"]) for r in read_csv(src / "transactions.csv.gz")})
    keep = {str(h) for h in households[:CJ_HOUSEHOLDS]}
    stats["households_kept"] = len(keep)
    stats["households_total"] = len(households)

    products: dict[str, tuple[str, str]] = {
        r["product_id"]: (r["department"], r["product_category"])
        for r in read_csv(src / "products.csv.gz")
    }
    redemptions = [
        r for r in read_csv(src / "coupon_redemptions.csv.gz") if r["household_id"] in keep
    ]
    # (household, date) -> campaigns whose coupon was redeemed that day; names a basket's coupon.
    redeemed_on: dict[tuple[str, str], set[int]] = defaultdict(set)
    for r in redemptions:
        redeemed_on[(r["household_id"], r["redemption_date"])].add(int(r["campaign_id"]))

    baskets: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in read_csv(src / "transactions.csv.gz"):
        if r["household_id"] in keep:
            baskets[r["basket_id"]].append(r)

    events: list[Event] = []
    for basket_id, lines in baskets.items():
        hh = lines[0]["household_id"]
        ts = min(r["transaction_timestamp"] for r in lines)
        amount = sum(float(r["sales_value"]) for r in lines)
        discount = sum(
            float(r["retail_disc"]) + float(r["coupon_disc"]) + float(r["coupon_match_disc"])
            for r in lines
        )
        coupon = sum(float(r["coupon_disc"]) for r in lines)
        items = []
        for r in lines:
            qty = int(r["quantity"])
            if qty < 1:
                stats["lines_qty0_skipped_from_items"] += 1
                continue
            dept, cat = products.get(r["product_id"], ("", ""))
            if r["product_id"] not in products:
                stats["lines_unknown_product"] += 1
            item: Event = {"product_id": r["product_id"]}
            if dept or cat:
                item["category"] = dept or cat  # coarse department; product_category as fallback
            item["quantity"] = qty
            item["unit_price"] = round(float(r["sales_value"]) / qty, 4) + 0.0
            items.append(item)
        event: Event = {
            "event_id": f"cj-p-{basket_id}",
            "customer_id": f"cj-{hh}",
            "type": "purchase",
            "ts": iso(datetime.fromisoformat(ts).replace(tzinfo=UTC)),
            "order_id": basket_id,
            "amount": money(amount),
            "currency": "USD",
            "channel": "store",
            "discount": money(discount),
        }
        if coupon > 0:
            camps = sorted(redeemed_on.get((hh, ts[:10]), ()))
            if camps:
                stats["coupon_code_campaign"] += 1
                event["coupon_code"] = ",".join(f"cj-camp-{c}" for c in camps)
            else:
                stats["coupon_code_generic"] += 1
                event["coupon_code"] = "cj-coupon"
        if items:
            event["items"] = items
        else:
            stats["baskets_without_items"] += 1
        event["store_id"] = lines[0]["store_id"]  # extra field: ignored by the contract
        events.append(event)

    for r in read_csv(src / "campaigns_received.csv.gz"):
        if r["household_id"] not in keep:
            continue
        hh, camp = r["household_id"], r["campaign_id"]
        events.append(
            {
                "event_id": f"cj-s-{hh}-{camp}",
                "customer_id": f"cj-{hh}",
                "type": "email_sent",
                "ts": iso(datetime.fromisoformat(r["start_date"]).replace(tzinfo=UTC)),
                "campaign_id": f"cj-camp-{camp}",
                "campaign_type": r["campaign_type"],  # extra field
            }
        )
    for r in redemptions:
        hh, camp, upc, day = (
            r["household_id"],
            r["campaign_id"],
            r["coupon_upc"],
            r["redemption_date"],
        )
        events.append(
            {
                "event_id": f"cj-r-{hh}-{camp}-{upc}-{day}",
                "customer_id": f"cj-{hh}",
                "type": "email_click",
                "ts": iso(datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)),
                "campaign_id": f"cj-camp-{camp}",
                "coupon_upc": upc,  # extra field
            }
        )
    return events


# ----------------------------------------------------------------------------------------------
# UCI Online Retail II
# ----------------------------------------------------------------------------------------------


def convert_online_retail(src: Path, stats: Counter[str]) -> list[Event]:
    """One ``purchase`` per invoice, one ``refund`` per cancellation (``C...``) invoice.

    - Lines with no customer_id are skipped (counted); so are invoices left with no lines.
    - ``amount`` = |sum of line_total| over all lines, including postage / manual / discount
      lines (that is what was charged or refunded); those non-product stock codes are left out of
      ``items``.
    - ``ts`` = the invoice's earliest invoice_date, UK wall clock with the UK offset of that day.
    """
    invoices: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in read_csv(src / "invoice_lines.csv.gz"):
        if not r["customer_id"]:
            stats["lines_without_customer_skipped"] += 1
            continue
        invoices[r["invoice"]].append(r)

    events: list[Event] = []
    for invoice, lines in invoices.items():
        cancel = invoice.startswith("C")
        total = sum(float(r["line_total"]) for r in lines)
        if len({r["customer_id"] for r in lines}) != 1:
            raise SystemExit(f"invoice {invoice} has several customers")
        items = []
        for r in lines:
            if r["stock_code"].upper() in ORI_NON_PRODUCT:
                stats["non_product_lines_amount_only"] += 1
                continue
            items.append(
                {
                    "product_id": r["stock_code"],
                    "quantity": abs(int(r["quantity"])),
                    "unit_price": float(r["price"]) + 0.0,
                }
            )
        ts = uk_local(datetime.fromisoformat(min(r["invoice_date"] for r in lines)))
        event: Event = {
            "event_id": f"ori-{invoice}",
            "customer_id": f"ori-{lines[0]['customer_id']}",
            "type": "refund" if cancel else "purchase",
            "ts": iso(ts),
            "order_id": invoice,
            "amount": money(abs(total)),
            "currency": "GBP",
            "channel": "web",
        }
        if items:
            event["items"] = items
        else:
            stats["invoices_without_product_items"] += 1
        event["country"] = lines[0]["country"]  # extra field
        events.append(event)
    return events


# ----------------------------------------------------------------------------------------------
# REES46 clickstream
# ----------------------------------------------------------------------------------------------

_R46_TYPE = {"view": "product_view", "cart": "add_to_cart", "purchase": "purchase"}


def convert_rees46(src: Path, stats: Counter[str]) -> list[Event]:
    """view -> ``product_view``, cart -> ``add_to_cart``, purchase -> ``purchase`` (one per row).

    One ``session_start`` per (user_id, user_session) at its first event. Event ids:
    ``r46-0-<user>-<session>`` for session starts and ``r46-1-<row>`` for source rows (1-based,
    zero-padded), so at an equal ts a session's start sorts before its first event and source rows
    keep their file order.
    """
    events: list[Event] = []
    seen_sessions: set[tuple[str, str]] = set()
    for row_no, r in enumerate(read_csv(src / "events.csv.gz"), start=1):
        ts = iso(datetime.fromisoformat(r["event_time"].replace("Z", "+00:00")))
        cid = f"r46-{r['user_id']}"
        session = r["user_session"]
        if (r["user_id"], session) not in seen_sessions:
            seen_sessions.add((r["user_id"], session))
            events.append(
                {
                    "event_id": f"r46-0-{r['user_id']}-{session}",
                    "customer_id": cid,
                    "type": "session_start",
                    "ts": ts,
                    "session_id": session,
                    "channel": "web",
                }
            )
        kind = _R46_TYPE[r["event_type"]]
        price = float(r["price"]) + 0.0
        category = r["category_code"] or None
        event: Event
        if kind == "purchase":
            stamp = ts[:19].replace("-", "").replace(":", "").replace("T", "")
            item: Event = {"product_id": r["product_id"]}
            if category:
                item["category"] = category
            item["quantity"] = 1
            item["unit_price"] = price
            event = {
                "event_id": f"r46-1-{row_no:05d}",
                "customer_id": cid,
                "type": "purchase",
                "ts": ts,
                "order_id": f"r46-o-{session}-{r['product_id']}-{stamp}",
                "amount": price,
                "currency": "USD",
                "channel": "web",
                "items": [item],
                "session_id": session,  # extra field
            }
        else:
            event = {
                "event_id": f"r46-1-{row_no:05d}",
                "customer_id": cid,
                "type": kind,
                "ts": ts,
                "session_id": session,
                "channel": "web",
            }
            if category:
                event["category"] = category
            event["product_id"] = r["product_id"]
            event["price"] = price
        if r["brand"]:
            event["brand"] = r["brand"]  # extra field
        events.append(event)
    stats["source_rows"] = row_no
    stats["sessions"] = len(seen_sessions)
    return events


# ----------------------------------------------------------------------------------------------
# Hillstrom (synthetic clock, real outcomes)
# ----------------------------------------------------------------------------------------------

_HILL_CAMPAIGN = {"Mens E-Mail": "hill-mens", "Womens E-Mail": "hill-womens"}


def convert_hillstrom(src: Path, stats: Counter[str]) -> list[Event]:
    """Synthetic timeline on real outcomes; see SOURCES.md for the exact clock.

    All offsets come from ``stable_hash("hillstrom", customer_id, label)``:

    - e-mail arms: ``email_sent`` at T0; ``email_delivered`` at T0 + 1..300 s.
    - visit == 1, e-mail arm: ``email_open`` at T0 + 10 min .. 7 days; ``email_click`` 1..180 min
      after the open; ``session_start`` (web) 10 s after the click.
    - visit == 1, control arm: ``session_start`` (web) at T0 + 10 min .. 7 days.
    - conversion == 1: ``purchase`` of ``spend`` USD 5..64 min after the session start (a visit
      always exists for converters in the kept rows; otherwise T0 + 10 min .. 7 days).
    """
    rows = sorted(read_csv(src / "customers.csv.gz"), key=lambda r: int(r["customer_id"]))
    rows = rows[:HILLSTROM_CUSTOMERS]
    stats["customers_kept"] = len(rows)
    week_min = 7 * 24 * 60

    def minutes(cid: str, label: str, lo: int, hi: int) -> timedelta:
        return timedelta(minutes=lo + stable_hash("hillstrom", cid, label) % (hi - lo + 1))

    events: list[Event] = []
    for r in rows:
        raw_id = r["customer_id"]
        cid = f"hill-{raw_id}"
        pre = f"hill-{int(raw_id):05d}"

        def ev(seq: int, kind: str, ts: datetime, cid: str = cid, pre: str = pre) -> Event:
            return {
                "event_id": f"{pre}-{seq}-{kind}",
                "customer_id": cid,
                "type": kind,
                "ts": iso(ts),
            }

        campaign = _HILL_CAMPAIGN.get(r["segment"])
        visit_at: datetime | None = None
        if campaign:
            stats[f"arm_{campaign}"] += 1
            delivered = HILL_T0 + timedelta(
                seconds=1 + stable_hash("hillstrom", raw_id, "delivered") % 300
            )
            events.append({**ev(1, "email_sent", HILL_T0), "campaign_id": campaign})
            events.append({**ev(2, "email_delivered", delivered), "campaign_id": campaign})
            if r["visit"] == "1":
                opened = HILL_T0 + minutes(raw_id, "open", 10, week_min)
                clicked = opened + minutes(raw_id, "click", 1, 180)
                events.append({**ev(3, "email_open", opened), "campaign_id": campaign})
                events.append({**ev(4, "email_click", clicked), "campaign_id": campaign})
                visit_at = clicked + timedelta(seconds=10)
        else:
            stats["arm_control"] += 1
            if r["visit"] == "1":
                visit_at = HILL_T0 + minutes(raw_id, "visit", 10, week_min)
        if visit_at is not None:
            events.append(
                {
                    **ev(5, "session_start", visit_at),
                    "session_id": f"hill-v-{raw_id}",
                    "channel": "web",
                }
            )
        if r["conversion"] == "1":
            base = visit_at or HILL_T0 + minutes(raw_id, "visit", 10, week_min)
            bought = base + minutes(raw_id, "purchase", 5, 64)
            event = {
                **ev(6, "purchase", bought),
                "order_id": f"hill-o-{raw_id}",
                "amount": money(float(r["spend"])),
                "currency": "USD",
            }
            if visit_at is not None:
                event["channel"] = "web"
            else:
                stats["conversions_without_visit"] += 1
            events.append(event)
    return events


# ----------------------------------------------------------------------------------------------
# bad input for the dead-letter demo
# ----------------------------------------------------------------------------------------------

_OK = '"event_id":"bad-{n}","customer_id":"bad-c{n}"'
_TS = '"ts":"2024-05-01T10:00:00+00:00"'
BAD_LINES = [
    # not JSON
    "this is not json",
    '{"event_id": "bad-2", "customer_id": "bad-c2", "type": "purchase"',  # truncated
    "{'event_id': 'bad-3', 'customer_id': 'bad-c3'}",  # single quotes
    '{"event_id":"bad-4","customer_id":"bad-c4","type":"page_view",}',  # trailing comma
    "<event><id>bad-5</id></event>",  # XML
    # JSON but not an object
    '[{"event_id":"bad-6","customer_id":"bad-c6","type":"page_view"}]',
    '"just a string"',
    "42",
    "null",
    # unknown / missing type
    "{" + _OK + ',"type":"page_click",' + _TS + "}",
    "{" + _OK + ',"type":"PURCHASE",' + _TS + ',"order_id":"o1","amount":1.0}',
    "{" + _OK + "," + _TS + "}",
    "{" + _OK + ',"type":null,' + _TS + "}",
    # missing required fields
    '{"event_id":"bad-14","type":"page_view",' + _TS + "}",  # no customer_id
    '{"event_id":"bad-15","customer_id":null,"type":"page_view",' + _TS + "}",
    '{"customer_id":"bad-c16","type":"page_view",' + _TS + "}",  # no event_id
    "{" + _OK + ',"type":"page_view"}',  # no ts
    "{" + _OK + ',"type":"purchase",' + _TS + ',"amount":10.0}',  # no order_id
    "{" + _OK + ',"type":"purchase",' + _TS + ',"order_id":"o19"}',  # no amount
    "{" + _OK + ',"type":"email_open",' + _TS + "}",  # no campaign_id
    "{" + _OK + ',"type":"email_click",' + _TS + ',"campaign_id":null}',
    # wrong types
    "{" + _OK + ',"type":"purchase",' + _TS + ',"order_id":"o22","amount":"12.50"}',
    "{" + _OK + ',"type":"purchase",' + _TS + ',"order_id":"o23","amount":true}',
    '{"event_id":"bad-24","customer_id":12345,"type":"page_view",' + _TS + "}",
    "{" + _OK + ',"type":"product_view",' + _TS + ',"price":"9.99"}',
    "{" + _OK + ',"type":"purchase",' + _TS + ',"order_id":"o26","amount":5.0,"items":"x"}',
    "{"
    + _OK
    + ',"type":"purchase",'
    + _TS
    + ',"order_id":"o27","amount":5.0,"items":[{"quantity":1.5}]}',
    # negative / out-of-range values
    "{" + _OK + ',"type":"purchase",' + _TS + ',"order_id":"o28","amount":-20.0}',
    "{" + _OK + ',"type":"refund",' + _TS + ',"order_id":"o29","amount":-0.01}',
    "{" + _OK + ',"type":"product_view",' + _TS + ',"price":-1}',
    "{" + _OK + ',"type":"purchase",' + _TS + ',"order_id":"o31","amount":5.0,"discount":-2.0}',
    "{"
    + _OK
    + ',"type":"purchase",'
    + _TS
    + ',"order_id":"o32","amount":5.0,"items":[{"product_id":"p","quantity":0}]}',
    "{" + _OK + ',"type":"purchase",' + _TS + ',"order_id":"o33","amount":5.0,"currency":"usd"}',
    '{"event_id":"","customer_id":"bad-c34","type":"page_view",' + _TS + "}",  # empty id
    # bad timestamps
    "{" + _OK + ',"type":"page_view","ts":"2024-05-01T10:00:00"}',  # no offset
    "{" + _OK + ',"type":"page_view","ts":"2024-05-01 10:00"}',  # no offset, space
    "{" + _OK + ',"type":"page_view","ts":"yesterday"}',
    "{" + _OK + ',"type":"page_view","ts":"2024-13-45T25:61:00+00:00"}',
    "{" + _OK + ',"type":"page_view","ts":""}',
    # unknown channel
    "{" + _OK + ',"type":"session_start",' + _TS + ',"channel":"carrier-pigeon"}',
    "{" + _OK + ',"type":"purchase",' + _TS + ',"order_id":"o41","amount":5.0,"channel":"WEB"}',
]


def bad_events_text() -> str:
    """The malformed lines, with ``{n}`` replaced by each line's 1-based number."""
    return "".join(line.replace("{n}", str(n)) + "\n" for n, line in enumerate(BAD_LINES, 1))


# ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shared",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "data",
        help="folder holding the shared datasets (default: ../shared/data from the repo root)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "stream" / "data" / "demo",
        help="output folder (default: stream/data/demo in the repo)",
    )
    args = parser.parse_args(argv)
    shared: Path = args.shared
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    jobs = [
        ("completejourney.jsonl.gz", convert_completejourney, shared / "completejourney"),
        ("online_retail_ii.jsonl.gz", convert_online_retail, shared / "online_retail_ii"),
        ("rees46.jsonl.gz", convert_rees46, shared / "rees46_clickstream"),
        ("hillstrom.jsonl.gz", convert_hillstrom, shared / "hillstrom_email"),
    ]
    total_bytes = 0
    for name, convert, src in jobs:
        stats: Counter[str] = Counter()
        events = convert(src, stats)
        write_jsonl_gz(out / name, events)
        size = (out / name).stat().st_size
        total_bytes += size
        by_type = Counter(e["type"] for e in events)
        customers = len({e["customer_id"] for e in events})
        print(f"{name}: {len(events)} events, {customers} customers, {size} bytes")
        for kind, n in sorted(by_type.items()):
            print(f"  {kind:16} {n}")
        for key, n in sorted(stats.items()):
            print(f"  [{key}] {n}")
    bad = out / "bad_events.jsonl"
    bad.write_bytes(bad_events_text().encode())
    total_bytes += bad.stat().st_size
    print(f"bad_events.jsonl: {len(BAD_LINES)} lines, {bad.stat().st_size} bytes")
    print(f"total: {total_bytes} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
