"""The agent memory: a tenant-scoped store in LanceDB, the ADD/UPDATE/DELETE/NOOP policy, hybrid retrieval,
rerankers, context reordering and adaptive retrieval. Nothing here knows about HTTP; serve/ wraps it."""
