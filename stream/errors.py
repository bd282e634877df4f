"""Exceptions raised by microseg.

One root, so callers can catch everything of ours with one clause::

    MicrosegError
    ├── ConfigError            a setting is missing or invalid (raised at start-up)
    ├── BrokerError            Kafka cannot be reached or set up
    │   └── EmbeddedBrokerError    the embedded Tansu broker failed to start or stop
    └── ReplayError            a replay source or target cannot be used

Bad *events* are never exceptions: they are data, dead-lettered with a reason code
(see ``stream.core.reasons``).
"""

from __future__ import annotations


class MicrosegError(Exception):
    """Root of every microseg exception."""


class ConfigError(MicrosegError):
    """A setting is invalid; the message names the setting and what is allowed."""


class BrokerError(MicrosegError):
    """Kafka cannot be reached or set up."""


class EmbeddedBrokerError(BrokerError):
    """The embedded broker failed to start or stop."""


class ReplayError(MicrosegError):
    """A replay source or target cannot be used."""
