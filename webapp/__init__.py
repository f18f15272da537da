"""Equing Chat: a light, self-hostable web chat for LLMs (Flask + htmx).

The application factory lives in ``factory``; ``docs/architecture.md`` maps the rest.
"""

from __future__ import annotations

from .factory import create_app

__all__ = ["create_app"]
