"""The review page in a real browser: Debian's chromium, headless, driven through
chromium-driver by selenium. Sign in with a key, filter the list, open a claim, see both
timelines, the pictures and the evidence, press the buttons and watch status and history
change (and claims.sqlite with them); another tenant's claim is not there for you.

``make test`` installs chromium and chromium-driver (its ``browser`` step), so here a missing
browser is a failure, not a skip; ``NANHU_SKIP_BROWSER=1`` skips on a machine where the
Makefile has not run. ``NANHU_REVIEW_SCREENSHOT=PATH`` keeps the claim page's screenshot
(docs/review-claim.png is one).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

selenium = pytest.importorskip("selenium", reason="selenium is in the dev extra") \
    if os.environ.get("NANHU_SKIP_BROWSER") else __import__("selenium")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("NANHU_SKIP_BROWSER"):
            pytest.skip("NANHU_SKIP_BROWSER is set and chromium/chromedriver are missing")
        pytest.fail("chromium and chromedriver are needed for the review page's tests: run "
                    "`make browser` (make test does), or apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1000,1400", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    # An explicit driver path: selenium must not try to download one.
    browser = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    browser.implicitly_wait(5)
    yield browser
    browser.quit()


def click(browser, element) -> None:
    """Click what loads a new page, and wait until the new one has loaded.

    The old page is marked, and the wait is for a complete document without the mark.
    Selenium's ``staleness_of`` is not used: while a page is being torn down chromium may
    answer a question about the old node with a generic "does not belong to the document"
    error instead of a stale-element one, which ``staleness_of`` does not catch (a CI run
    failed on exactly that)."""
    browser.execute_script("document.documentElement.dataset.nanhuLeft = '1'")
    element.click()

    def loaded(driver) -> bool:
        return bool(driver.execute_script(
            "return document.readyState === 'complete' && "
            "document.documentElement.dataset.nanhuLeft === undefined"))

    WebDriverWait(browser, 15, ignored_exceptions=(WebDriverException,)).until(loaded)


def sign_in(browser, review, who: str) -> None:
    browser.delete_all_cookies()
    browser.get(review.url + "/login")
    browser.find_element(By.ID, "key").send_keys(review.keys[who])
    click(browser, browser.find_element(By.ID, "sign-in"))
    assert browser.current_url == review.url + "/claims"


def listed(browser) -> set[str]:
    return {row.get_attribute("data-claim") for row in
            browser.find_elements(By.CSS_SELECTOR, "tr.claim-row")}


def press(browser, status: str, note: str = "") -> None:
    if note:
        browser.find_element(By.ID, "note").send_keys(note)
    click(browser, browser.find_element(By.ID, f"to-{status}"))
    assert browser.find_element(By.ID, "status").text == status
    assert browser.find_element(By.ID, "done").text == f"Claim is now {status}."


def history(browser) -> list[str]:
    return [row.find_elements(By.TAG_NAME, "td")[1].text
            for row in browser.find_elements(By.CSS_SELECTOR, "tr.history-row")]


def stored(review, claim_id: str) -> tuple[str, list[tuple]]:
    with sqlite3.connect(review.catalog / "claims.sqlite") as db:
        (seq, status), = db.execute("SELECT seq, status FROM claims WHERE claim_id = ?", (claim_id,))
        changes = db.execute("SELECT from_status, to_status, who, party, note FROM claim_history "
                             "WHERE claim_seq = ? ORDER BY rowid", (seq,)).fetchall()
    return status, changes


def test_a_rights_holder_and_a_platform_review_a_claim_in_the_browser(browser, review, tmp_path):
    film = review.claims["film_vids"]
    sign_in(browser, review, "label_a")
    assert "label-a" in browser.find_element(By.ID, "who").text
    assert listed(browser) == {review.claims["film_tube"], film}
    Select(browser.find_element(By.ID, "f-status")).select_by_visible_text("open")
    browser.find_element(By.ID, "f-upload").send_keys("vid-1")
    click(browser, browser.find_element(By.ID, "apply"))
    assert "upload=vid-1" in browser.current_url and listed(browser) == {film}

    click(browser, browser.find_element(By.LINK_TEXT, film))
    assert browser.find_element(By.ID, "claim-id").text == film
    assert browser.find_element(By.ID, "status").text == "open"
    for bar in ("upload-timeline", "reference-timeline"):
        assert float(browser.find_element(By.ID, bar).get_attribute("width")) > 600
    assert browser.find_elements(By.CSS_SELECTOR, "rect.upload-stretch")
    assert browser.find_elements(By.CSS_SELECTOR, "rect.reference-stretch")
    pictures = browser.find_elements(By.CSS_SELECTOR, "img.thumbnail")
    assert pictures and all(browser.execute_script("return arguments[0].naturalWidth", p) == 160
                            for p in pictures)  # the pictures decode in the browser
    evidence = browser.find_element(By.ID, "evidence").text
    assert "audio+video match, band high" in evidence and "% of the upload" in evidence
    assert "action: block" in evidence
    # rights holder: confirm, release not pressed yet; the platform's dispute is not offered
    assert {b.get_attribute("value") for b in
            browser.find_elements(By.CSS_SELECTOR, "#resolve button")} == {"confirmed", "released"}
    press(browser, "confirmed", "clearly the film")
    assert history(browser) == ["open", "open → confirmed"]
    shot = Path(os.environ.get("NANHU_REVIEW_SCREENSHOT") or tmp_path / "review-claim.png")
    browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stored(review, film)[0] == "confirmed"

    sign_in(browser, review, "vids")  # the platform disputes
    browser.get(f"{review.url}/claims/{film}")
    assert [b.get_attribute("value") for b in
            browser.find_elements(By.CSS_SELECTOR, "#resolve button")] == ["disputed"]
    press(browser, "disputed", "we hold a licence")

    sign_in(browser, review, "label_a")  # the rights holder reinstates, then releases
    browser.get(f"{review.url}/claims/{film}")
    press(browser, "reinstated", "the licence covers audio only")
    press(browser, "released")
    assert history(browser) == ["open", "open → confirmed", "confirmed → disputed",
                                "disputed → reinstated", "reinstated → released"]
    assert browser.find_element(By.ID, "nothing-to-do").text == "Released: that is final."
    status, changes = stored(review, film)
    assert status == "released"
    assert [(c[0], c[1], c[2], c[3]) for c in changes[1:]] == [
        ("open", "confirmed", "label-a", "rights holder"),
        ("confirmed", "disputed", "vids", "platform"),
        ("disputed", "reinstated", "label-a", "rights holder"),
        ("reinstated", "released", "label-a", "rights holder")]
    assert changes[1][4] == "clearly the film" and changes[2][4] == "we hold a licence"


def test_another_tenants_claim_is_not_there_in_the_browser(browser, review):
    sign_in(browser, review, "label_b")
    assert listed(browser) == {review.claims["song_tube"]}
    browser.get(f"{review.url}/claims/{review.claims['film_tube']}")
    assert "no claim with id" in browser.find_element(By.ID, "message").text
    assert not browser.find_elements(By.ID, "resolve")
    browser.get(f"{review.url}/claims/{review.claims['song_tube']}")
    assert browser.find_element(By.ID, "no-video").text.startswith("No video in this claim")
    click(browser, browser.find_element(By.ID, "logout"))
    assert browser.current_url == review.url + "/login"
    browser.get(f"{review.url}/claims")
    assert browser.current_url == review.url + "/login"
