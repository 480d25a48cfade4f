"""What the tests share: models, configs, the example app's paths, comparisons, and the
programs some tests run in subprocesses. Imported as ``initschema_testing`` (pytest puts
``tests/`` on ``sys.path``; see ``pythonpath`` in pyproject.toml)."""
