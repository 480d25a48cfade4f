"""The rule library and strategies Hydra apps find on their search path as
``pkg://initschema.conf`` (the ``init`` and ``init_strategy`` groups), and their JSON Schemas."""
