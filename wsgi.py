"""The WSGI entry point: ``gunicorn wsgi:app`` (and ``FLASK_APP`` for the ``flask`` commands)."""

import gc
import sys

from webapp import create_app

# Under gunicorn this process only serves requests: the `flask db` commands, and Alembic with
# them, are left out. The `flask` command line imports this module too, and keeps them.
app = create_app(migrations="gunicorn" not in sys.modules)

# What exists now (the app, its modules, the libraries: some 150,000 objects) lives as long as
# the process. Out of the collector's sight, a full collection no longer walks it all: one
# came every few requests of a long conversation's page and made it about a third slower
# (bench.pages does the same after making its app).
gc.freeze()
