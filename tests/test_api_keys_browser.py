"""The API keys page in chromium against gunicorn (issue 18 point 3): a key made by its form,
copied with Copy, used over HTTP, revoked, refused; and the same without JavaScript. Controls
are found by accessible name."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.helpers import sign_in

pytestmark = pytest.mark.browser

PAGE = "/settings/api-keys"


def models(base: str, key: str) -> requests.Response:
    return requests.get(base + "/v1/models", headers={"Authorization": f"Bearer {key}"},
                        timeout=10)


def test_make_copy_use_and_revoke_a_key(browser, server):
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"],
                                  base_url=server.base)
    page = context.new_page()
    errors = sign_in(page, server.base)
    page.get_by_role("navigation", name="Account").get_by_role("link", name="API keys").click()
    page.wait_for_url(server.base + PAGE)
    page.get_by_role("textbox", name="Key name").fill("browser")
    page.get_by_role("button", name="Create key").click()
    shown = page.get_by_role("textbox", name=re.compile("Your new key"))
    expect(shown).to_be_focused()
    expect(shown).to_have_attribute("readonly", "")
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.locator("#announcer")).to_have_text("Copied")
    key = page.evaluate("navigator.clipboard.readText()")
    assert key == shown.input_value() and key.startswith("eqk-")
    # The list of keys followed, out of band.
    row = page.get_by_role("row").filter(has_text="browser")
    expect(row).to_contain_text("never")
    expect(row).to_contain_text(key[:10] + "…")

    listed = models(server.base, key)
    assert listed.status_code == 200
    assert listed.json()["data"] and all("/" in m["id"] for m in listed.json()["data"])

    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text("Key “browser” revoked")
    expect(row).to_contain_text("revoked")
    expect(page.get_by_role("button", name="Revoke")).to_have_count(0)
    refused = models(server.base, key)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"

    page.reload()
    assert key not in page.content()
    assert errors == []
    context.close()


def test_without_javascript_the_key_is_shown_on_the_answer_and_revoked_by_a_form(
        browser, server):
    context = browser.new_context(java_script_enabled=False, base_url=server.base)
    page = context.new_page()
    sign_in(page, server.base)
    page.goto(server.base + PAGE)
    page.get_by_role("textbox", name="Key name").fill("no script")
    page.get_by_role("button", name="Create key").click()
    shown = page.get_by_role("textbox", name=re.compile("Your new key"))
    key = shown.input_value()
    assert key.startswith("eqk-")
    # No Copy without JavaScript (it could not work): the field is there to select.
    expect(page.get_by_role("button", name="Copy", exact=True)).to_have_count(0)
    assert models(server.base, key).status_code == 200
    page.get_by_role("button", name="Revoke").click()
    page.wait_for_url(server.base + PAGE)
    expect(page.get_by_role("status")).to_contain_text("Key “no script” revoked")
    assert key not in page.content()
    assert models(server.base, key).status_code == 401
    context.close()


def test_the_page_fits_a_phone(browser, server):
    """Its tables scroll in their own boxes; nothing widens the page (the visually hidden
    words of a table's cells did, positioned against the page)."""
    context = browser.new_context(viewport={"width": 320, "height": 640}, is_mobile=True,
                                  has_touch=True, base_url=server.base)
    page = context.new_page()
    sign_in(page, server.base)
    page.goto(server.base + PAGE)
    page.get_by_role("textbox", name="Key name").fill("a key with a name long enough to wrap")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_role("textbox", name=re.compile("Your new key")).input_value()
    answered = requests.post(server.base + "/v1/chat/completions", timeout=30, json={
        "model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Hi"}]},
        headers={"Authorization": f"Bearer {key}"})
    assert answered.status_code == 200
    page.reload()
    expect(page.get_by_role("row").filter(has_text="gpt-3.5-turbo")).to_have_count(1)
    assert page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]") == \
        [320, 320]
    context.close()
