"""AssetPairs cache, one per base URL and shared by every account (pair rules are public)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import ClassVar

from copytrader.kraken.models import PairInfo

PAIRS_TTL_S = 3600.0
# An unknown name triggers a reload only if the cache is at least this old (typos stay cheap).
RELOAD_ON_MISS_AFTER_S = 60.0


class PairCache:
    """Pairs by id plus an index by id, altname and wsname (case-insensitive)."""

    _instances: ClassVar[dict[str, PairCache]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pairs: dict[str, PairInfo] = {}
        self._index: dict[str, PairInfo] = {}
        self._loaded_at: float | None = None

    @classmethod
    def for_url(cls, api_url: str) -> PairCache:
        with cls._instances_lock:
            cache = cls._instances.get(api_url)
            if cache is None:
                cache = cls._instances[api_url] = cls()
            return cache

    def _age(self) -> float | None:
        return None if self._loaded_at is None else self._clock() - self._loaded_at

    def get(self, load: Callable[[], dict[str, PairInfo]], *, refresh: bool) -> dict[str, PairInfo]:
        """A copy of the pairs, loaded first if stale (or `refresh`)."""
        return dict(self._fresh(load, refresh=refresh))

    def _fresh(
        self, load: Callable[[], dict[str, PairInfo]], *, refresh: bool
    ) -> dict[str, PairInfo]:
        """The current pairs (not a copy: a load replaces the dict, it never changes one)."""
        with self._lock:
            age = self._age()
            if not refresh and age is not None and age < PAIRS_TTL_S:
                return self._pairs
        pairs = load()  # outside the lock: a slow reply must not block readers of a fresh copy
        index: dict[str, PairInfo] = {}
        for info in pairs.values():
            for name in (info.pair_id, info.altname, info.wsname, info.wsname.replace("/", "")):
                if name:
                    index.setdefault(name.upper(), info)
        with self._lock:
            self._pairs, self._index, self._loaded_at = pairs, index, self._clock()
        return pairs

    def cached(self, name: str) -> PairInfo | None:
        """The pair if a fresh load has it, without loading (None: ask `lookup`)."""
        with self._lock:
            age = self._age()
            if age is None or age >= PAIRS_TTL_S:
                return None
            return self._index.get(name.upper())

    def lookup(self, name: str, load: Callable[[], dict[str, PairInfo]]) -> PairInfo | None:
        self._fresh(load, refresh=False)
        with self._lock:
            found = self._index.get(name.upper())
            age = self._age()
        if found is None and (age is None or age >= RELOAD_ON_MISS_AFTER_S):
            self._fresh(load, refresh=True)
            with self._lock:
                found = self._index.get(name.upper())
        return found
