"""The WSGI entry point: ``gunicorn wsgi:app`` (and ``FLASK_APP`` for the ``flask`` commands)."""

import sys

from webapp import create_app

# Under gunicorn this process only serves requests: the `flask db` commands, and Alembic with
# them, are left out. The `flask` command line imports this module too, and keeps them.
app = create_app(migrations="gunicorn" not in sys.modules)
