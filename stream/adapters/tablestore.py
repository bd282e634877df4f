"""Reads and writes of a Faust table's local store by partition, many keys at a time.

The worker reads every customer of a batch and writes back each changed one. Through Faust's
``Table`` a read is ``Mapping.get`` → ``ManagedUserDict`` → ``FastUserDict`` (``key in store``,
then ``store[key]``: two RocksDB look-ups, each encoding the key), with the *current event*
choosing the partition's database, and a write is one ``put`` per key. Here a partition's keys
are read with one multi-get and written with one ``WriteBatch`` — what Faust itself does when it
restores a table (``Store.apply_changelog_batch``). Only the local store is touched: the changelog
records are `stream.adapters.outbox`'s, which calls `write`.

The partition is the one Faust would route to (the partition of the customer's input event: the
changelog and the inputs are co-partitioned). The two stores the settings allow are supported:
RocksDB (one database per partition; written keys are remembered in the store's key index, as
``Store._set`` does) and memory (one dict for all partitions).

Relies on the pinned faust-streaming 0.15.3 stores (``_db_for_partition``, ``_key_index``, the
memory store's ``data``) and rocksdict (``Rdict.get`` of a list, ``WriteBatch``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksDBStore


def _store(table: Any) -> Any:
    store = table.data
    if not isinstance(store, RocksDBStore | MemoryStore):
        raise TypeError(f"unsupported table store {type(store).__name__}")
    return store


def get_many(table: Any, partition: int, keys: Sequence[bytes]) -> list[bytes | None]:
    """The stored values of ``keys`` in ``partition`` (None where there is none)."""
    store = _store(table)
    if isinstance(store, RocksDBStore):
        if not keys:
            return []
        return list(store._db_for_partition(partition).get(list(keys)))
    data = store.data
    return [data.get(k) for k in keys]


def get(table: Any, partition: int, key: bytes) -> bytes | None:
    """The stored value of ``key`` in ``partition``, or None."""
    store = _store(table)
    if isinstance(store, RocksDBStore):
        value: bytes | None = store._db_for_partition(partition).get(key)
        return value
    return store.data.get(key)  # type: ignore[no-any-return]


def write(table: Any, partition: int, items: Sequence[tuple[bytes, bytes | None]]) -> None:
    """Store ``items`` in ``partition``, in order (a None value deletes the key)."""
    store = _store(table)
    if isinstance(store, RocksDBStore):
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        index = store._key_index
        for key, value in items:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
                index[key] = partition
        store._db_for_partition(partition).write(batch)
        return
    data = store.data
    for key, value in items:
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
