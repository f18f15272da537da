"""Operators' commands for people's API keys: ``flask api-keys create``, ``list``, ``revoke``."""

from __future__ import annotations

import re

import pytest

from webapp.api.keys import PREFIX, SHOWN, find_key
from webapp.extensions import db
from webapp.models import ApiKey

#: A key as ``create`` prints it: the prefix and 43 URL-safe characters.
KEY = re.compile(rf"{PREFIX}[A-Za-z0-9_-]{{43}}")


@pytest.fixture()
def cli(app):
    """Run ``flask api-keys ARGS…`` in the app; returns click's result."""
    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(args=["api-keys", *args])


def created(cli, *args) -> tuple[int, str]:
    """Make a key with ``create ARGS…``; its id and the key (the last line printed)."""
    result = cli("create", *args)
    assert result.exit_code == 0, result.output
    *said, key = result.output.splitlines()
    assert KEY.fullmatch(key), result.output
    return int(re.search(r"created key (\d+)", said[0]).group(1)), key


def owner(app, key: str) -> str | None:
    """The username whose usable key ``key`` is, or None."""
    with app.app_context():
        found = find_key(db.session, key)
        return None if found is None else db.session.get(ApiKey, found[0]).user.username


def test_create_prints_the_key_alone_on_its_last_line(app, make_user, cli):
    make_user("alice")
    key_id, key = created(cli, "alice", "--name", "laptop")
    assert owner(app, key) == "alice"
    with app.app_context():
        row = db.session.get(ApiKey, key_id)
        # Only the key's start and digest are kept, never the key.
        assert (row.name, row.prefix) == ("laptop", key[:SHOWN])
        assert key not in (row.digest, row.prefix) and row.revoked_at is None
    # Without --name the key says who made it; each key is new.
    other_id, other = created(cli, "alice")
    assert other != key and other_id != key_id
    with app.app_context():
        assert db.session.get(ApiKey, other_id).name == "made by an operator"


def test_list_shows_whose_keys_they_are(app, make_user, cli):
    make_user("alice")
    make_user("bob")
    alice_id, alice_key = created(cli, "alice", "--name", "laptop")
    bob_id, bob_key = created(cli, "bob", "--name", "editor plugin")
    everyone = cli("list")
    assert everyone.exit_code == 0, everyone.output
    lines = everyone.output.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{alice_id}\talice\tlaptop\t{alice_key[:SHOWN]}…\tmade ")
    assert lines[1].startswith(f"{bob_id}\tbob\teditor plugin\t{bob_key[:SHOWN]}…\tmade ")
    assert all(line.endswith("\tlast used never\tactive") for line in lines)
    # The key itself is never shown again.
    assert alice_key not in everyone.output and bob_key not in everyone.output
    only_bob = cli("list", "bob")
    assert only_bob.exit_code == 0 and only_bob.output.splitlines() == lines[1:]


def test_revoke_refuses_the_key_from_then_on(app, make_user, cli):
    make_user("alice")
    key_id, key = created(cli, "alice", "--name", "old laptop")
    kept_id, kept = created(cli, "alice", "--name", "new laptop")
    result = cli("revoke", str(key_id))
    assert result.exit_code == 0, result.output
    assert f"revoked key {key_id} ('old laptop') of alice" in result.output
    assert owner(app, key) is None and owner(app, kept) == "alice"
    listed = cli("list", "alice").output.splitlines()
    assert re.search(r"\trevoked \d{4}-\d\d-\d\d \d\d:\d\d$", listed[0]), listed
    assert listed[1].startswith(f"{kept_id}\t") and listed[1].endswith("\tactive")
    again = cli("revoke", str(key_id))
    assert again.exit_code != 0 and f"key {key_id} was already revoked" in again.output


def test_unknown_people_and_keys_are_refused_in_words(app, make_user, cli):
    make_user("alice")
    for args in (("create", "nobody"), ("list", "nobody")):
        result = cli(*args)
        assert result.exit_code != 0 and "no account is called 'nobody'" in result.output
    missing = cli("revoke", "999")
    assert missing.exit_code != 0 and "there is no key 999" in missing.output
    not_an_id = cli("revoke", "laptop")
    assert not_an_id.exit_code != 0 and "'laptop' is not a valid integer" in not_an_id.output
    with app.app_context():
        assert db.session.query(ApiKey).count() == 0


def test_a_bad_name_or_too_many_keys_are_refused_in_words(app, make_user, cli):
    make_user("alice")
    blank = cli("create", "alice", "--name", "   ")
    assert blank.exit_code != 0 and "Give the key a name" in blank.output
    long_name = cli("create", "alice", "--name", "x" * 101)
    assert long_name.exit_code != 0 and "at most 100 characters" in long_name.output
    app.config["API_KEYS_PER_USER"] = 2
    first_id, _ = created(cli, "alice")
    created(cli, "alice")
    third = cli("create", "alice")
    assert third.exit_code != 0 and "You have 2 keys already" in third.output
    # A revoked key no longer counts.
    assert cli("revoke", str(first_id)).exit_code == 0
    created(cli, "alice")
