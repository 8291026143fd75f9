"""Searching for violations across processes and machines: the shared corpus and the fleet.

- `corpus`: where the failure corpus lives (a directory, or a Redis shared by a
  fleet of workers), namespaced per project, with a local fallback directory
  when Redis goes away.
- `fleet`: every worker's counters in Redis, and the fleet's totals (`onceflow status`).
"""

from __future__ import annotations

from onceflow.search.corpus import (CorpusError, SharedCorpus, default_corpus_name, is_redis_url,
                                    open_corpus)

__all__ = ["CorpusError", "SharedCorpus", "default_corpus_name", "is_redis_url", "open_corpus"]
