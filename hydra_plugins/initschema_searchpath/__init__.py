"""Hydra finds this plugin when initschema is installed: no import needed in the app."""
