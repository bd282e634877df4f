"""The pure domain core.

Synchronous and deterministic: it imports only the standard library, pydantic, river and numpy,
takes time from events and randomness from explicit seeds, and never touches Kafka, asyncio,
the clock or the environment. Adapters (``stream.adapters``) wrap it; the build fails if the
core imports one of them (see ``[tool.importlinter]`` in pyproject.toml).
"""
