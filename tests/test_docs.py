"""Code and documentation in step: every setting the app reads is documented."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from webapp.settings_table import BY_NAME, SETTINGS, markdown, replace_table

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "self-hosting.md").read_text()


def documented() -> set[str]:
    return set(re.findall(r"^\| `([A-Z_]+)`", DOC, re.M))


def test_the_settings_table_is_rendered_from_the_code():
    """docs/self-hosting.md's settings table is ``webapp/settings_table.py`` rendered: same
    settings, defaults and meanings, in the same order."""
    assert markdown() in DOC, (
        "the settings table of docs/self-hosting.md differs from webapp/settings_table.py; "
        "rewrite it with python -c 'from webapp.settings_table import write_doc; write_doc()'"
        "\n" + "\n".join(difflib.unified_diff(DOC.splitlines(), replace_table(DOC).splitlines(),
                                              lineterm="", n=0)))


def test_every_documented_setting_exists():
    """Each row of the doc's tables is a setting of the table or a gunicorn variable."""
    source = (ROOT / "gunicorn.conf.py").read_text()
    gunicorn = set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', source))
    assert not documented() - set(BY_NAME) - gunicorn


def test_every_gunicorn_variable_is_documented():
    source = (ROOT / "gunicorn.conf.py").read_text()
    names = set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', source))
    assert names and not names - documented()


def test_settings_read_in_code_are_in_the_table():
    """Any ``config["NAME"]`` or ``config.get("NAME")`` in the package is a setting of the
    table (and so documented)."""
    read = set()
    for path in (ROOT / "webapp").rglob("*.py"):
        read |= set(re.findall(r'config(?:\.get\(|\[)"([A-Z_]+)"', path.read_text()))
    builtin = {"TESTING"}
    assert not read - set(BY_NAME) - builtin, sorted(read - set(BY_NAME) - builtin)
    assert {setting.name for setting in SETTINGS} <= documented()


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "docs/self-hosting.md" in readme
