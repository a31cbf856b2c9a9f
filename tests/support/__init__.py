"""Test support shared by tests/ and bench/: one module per thing.

- ``stack``: the whole parley stack as real processes (gunicorn, Celery workers, Beat,
  a private Redis), and ``new_workdir``;
- ``webhooks``: webhook bodies as Meta sends them, and the test credentials;
- ``database``: fresh migrated Postgres databases (``ADMIN_URL``, ``migrate``);
- ``services``: skip locally, fail in CI, when a service is missing;
- ``ports``: a free loopback port;
- ``graph_stub``: the stub Graph API.

Nothing here imports a test module; bench/ imports only this package from tests/.
"""
