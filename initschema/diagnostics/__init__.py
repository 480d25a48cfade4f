"""What initialization wrote, measured: per-parameter statistics against the expected
moments (``initschema report``) and their figure."""
