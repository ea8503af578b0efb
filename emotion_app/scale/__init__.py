"""Serving many users beyond one process: the model in Ray Serve replicas, the web front calling them.

deployment.py (the replica: one engine, requests batched with `@serve.batch`), remote.py (the
front's side: an engine backend that calls the replicas through a handle, with retries),
cluster.py (start or join Ray, deploy, stop). Ray is imported only when these are used.
"""
