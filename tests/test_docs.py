"""Code and documentation in step: every setting the app reads is documented."""

from __future__ import annotations

import re
from pathlib import Path

from webapp.config import Config
from webapp.providers.registry import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "self-hosting.md").read_text()


def documented() -> set[str]:
    return set(re.findall(r"^\| `([A-Z_]+)`", DOC, re.M))


def test_every_config_setting_is_documented():
    names = {n for n in vars(Config) if n.isupper()} | set(SETTINGS) | {"SECRET_KEY", "LOG_LEVEL"}
    missing = names - documented()
    assert not missing, f"undocumented settings: {sorted(missing)}"


def test_every_gunicorn_variable_is_documented():
    source = (ROOT / "gunicorn.conf.py").read_text()
    names = set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', source))
    assert names and not names - documented()


def test_settings_read_in_code_are_documented():
    """Any ``config["NAME"]`` or ``config.get("NAME")`` in the package is in the table."""
    read = set()
    for path in (ROOT / "webapp").rglob("*.py"):
        read |= set(re.findall(r'config(?:\.get\(|\[)"([A-Z_]+)"', path.read_text()))
    builtin = {"TESTING"}
    assert not read - documented() - builtin, sorted(read - documented() - builtin)


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "docs/self-hosting.md" in readme
