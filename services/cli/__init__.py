"""The ``loyalty`` operator command (``services/cli/main.py``)."""
