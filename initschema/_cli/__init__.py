"""The ``initschema`` command's parts: its arguments, model building, YAML files and what
it prints."""
