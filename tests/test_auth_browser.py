"""In chromium against gunicorn: an old link to a deleted conversation stays dead (issue 13,
point 10), and signing in with a hostile ``next`` lands on this site's home page (issue 14,
point 2)."""

from __future__ import annotations

import pytest

from tests.helpers import chat_in_browser, serve, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture()
def server(tmp_path, fault_server):
    """conftest's ``server``, with Equing at the fault server's quick "ok" scenario."""
    server = serve(tmp_path, fault_server, "ok")
    yield server
    server.stop()


def test_an_old_link_to_a_deleted_conversation_stays_dead(browser, server):
    page = browser.new_page()
    sign_in(page, server.base)
    page.wait_for_url(server.base + "/")
    old = chat_in_browser(page, server.base, "the first conversation")
    page.goto(f"{server.base}/c/{old}/delete")
    page.click("button.danger")
    page.wait_for_url(server.base + "/")
    new = chat_in_browser(page, server.base, "a different one")
    assert new != old
    # The bookmark of the deleted conversation: before the fix it opened the new one.
    response = page.goto(f"{server.base}/c/{old}")
    assert response.status == 404
    assert "a different one" not in page.content()
    page.close()


@pytest.mark.parametrize("raw_next", ["/%09/evil.example", "/%0d%0a/evil.example",
                                      "/%5C/evil.example"])
def test_signing_in_with_a_hostile_next_lands_on_this_site(browser, server, raw_next):
    page = browser.new_page()
    sign_in(page, server.base, f"/login?next={raw_next}")
    page.wait_for_load_state()
    page.wait_for_url(server.base + "/")
    assert page.locator("#content").is_visible()
    page.close()
