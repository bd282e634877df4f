"""Client-side settings and workarounds for the embedded Tansu broker, and only for it.

Applied only when microseg starts its own broker (no ``MICROSEG_BROKER``); nothing in the
production path depends on them. Each item answers a measured quirk in BROKER.md:

* JoinGroup is held for session_timeout / 2 → short session, heartbeat and rebalance timeouts.
* Fetch long-poll sleeps for the whole ``fetch_max_wait_ms`` → cap it at 100 ms.
* ListOffsets(LATEST) is wrong when a batch holds several records → table recovery's end
  offsets come from the high watermark of a Fetch response instead (`patch_faust`).
"""

from __future__ import annotations

from typing import Any


def faust_settings() -> dict[str, Any]:
    """Faust settings overrides for Tansu."""
    return {
        "broker_session_timeout": 6.0,
        "broker_heartbeat_interval": 1.0,
        "broker_rebalance_timeout": 6.0,
    }
