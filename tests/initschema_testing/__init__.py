"""What the tests share: models, configs, the example app's paths, comparisons, a local
HTTP server with a checkpoint to serve (downloads), the programs some tests run in
subprocesses and how they run them (subprocesses). Imported as ``initschema_testing``
(pytest puts ``tests/`` on ``sys.path``; see ``pythonpath`` in pyproject.toml)."""
