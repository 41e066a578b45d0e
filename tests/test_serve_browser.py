"""factorion serve in a real headless browser (Chromium from the OS packages, driven by Selenium).

The test starts the server on a free port of 127.0.0.1, places a source and a sink by clicking
the grid, builds, reads the throughput and the blueprint string from the page, and checks the
string decodes to the same factory. ``make test`` installs chromium and chromium-driver when it
can; without them this module skips. ``FACTORION_SERVE_SCREENSHOT=docs/img/serve.png`` also saves
a screenshot of the page (how the README's picture is made).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import pytest

from factorion.core import blueprint_world as BW
from factorion.core.blueprint import load_blueprints
from factorion.core.world import SINK, SOURCE, World
from factorion.serve.app import create_app
from factorion.sim import throughput

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="no chromium/chromedriver (apt-get install chromium chromium-driver)")
webdriver = pytest.importorskip("selenium.webdriver", reason="no selenium (pip install -e '.[dev]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def url():
    import uvicorn
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(max_jobs=2, time_limit_s=120), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not server.started:
        assert time.monotonic() - t0 < 30 and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1250"):
        opts.add_argument(a)
    # the driver named in the Service: Selenium Manager (which would go online) is never run
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(DRIVER))
    yield driver
    driver.quit()


def cell(browser, y: int, x: int):
    return browser.find_element(By.CSS_SELECTOR, f"#grid .c[data-y='{y}'][data-x='{x}']")


def set_value(browser, element_id: str, value) -> None:
    """Type into an input the way a user does (select all, type, leave the field)."""
    el = browser.find_element(By.ID, element_id)
    browser.execute_script("arguments[0].value = arguments[1];"
                           "arguments[0].dispatchEvent(new Event('input'));"
                           "arguments[0].dispatchEvent(new Event('change'));", el, str(value))


def message(browser) -> str:
    m = browser.find_element(By.ID, "message")
    return m.text if m.is_displayed() else ""


def test_place_build_and_copy_the_string(url, browser):
    browser.get(url)
    body = browser.find_element(By.TAG_NAME, "body")
    WebDriverWait(browser, 30).until(lambda _: body.get_attribute("data-ready"))
    set_value(browser, "rows", 40)  # bad input: a message on the page, the grid unchanged
    assert "5 to 32" in message(browser)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#grid .c")) == 11 * 11
    set_value(browser, "rows", 9)
    set_value(browser, "cols", 9)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#grid .c")) == 81 and not message(browser)

    set_value(browser, "item", "iron-plate")
    cell(browser, 4, 0).click()  # the source tool is the default
    browser.find_element(By.CSS_SELECTOR, "input[name=tool][value=sink]").click()
    set_value(browser, "item", "unobtainium")
    cell(browser, 4, 8).click()
    assert "unknown item 'unobtainium'" in message(browser)
    browser.find_element(By.ID, "build").click()  # only a source: the API's reason shows on the page
    WebDriverWait(browser, 10).until(lambda b: "at least one source and one sink" in message(b))
    set_value(browser, "item", "iron-gear-wheel")
    cell(browser, 4, 8).click()
    browser.find_element(By.CSS_SELECTOR, "input[name=tool][value=obstacle]").click()
    for y in range(2, 5):
        cell(browser, y, 4).click()
    assert "source" in cell(browser, 4, 0).get_attribute("class")
    assert "sink" in cell(browser, 4, 8).get_attribute("class")

    set_value(browser, "budget", 2)
    browser.find_element(By.ID, "build").click()
    done = ".card[data-state=done]"
    WebDriverWait(browser, 120).until(lambda b: b.find_elements(By.CSS_SELECTOR, done)
                                      or b.find_elements(By.CSS_SELECTOR, ".card[data-state=failed]"))
    card = browser.find_element(By.CSS_SELECTOR, ".card")
    assert card.get_attribute("data-state") == "done", card.text
    shown = float(card.find_element(By.CSS_SELECTOR, ".throughput").get_attribute("data-value"))
    text = card.find_element(By.CSS_SELECTOR, "textarea.blueprint").get_attribute("value")
    assert "winner:" in card.text and card.find_element(By.TAG_NAME, "img").size["width"] > 100

    w = BW.from_blueprint(load_blueprints(text)[0].raw)
    assert w.shape == (9, 9)
    fixed = sorted((e.name, e.y, e.x, e.item) for e in w.entities() if e.name in (SOURCE, SINK, "obstacle"))
    assert fixed == [("obstacle", 2, 4, None), ("obstacle", 3, 4, None), ("obstacle", 4, 4, None),
                     (SINK, 4, 8, "iron-gear-wheel"), (SOURCE, 4, 0, "iron-plate")]
    assert shown > 0 and throughput(w) == pytest.approx(shown)

    copy = card.find_element(By.CSS_SELECTOR, "button.copy")
    copy.click()
    WebDriverWait(browser, 5).until(lambda b: copy.text == "Copied")
    shot = os.environ.get("FACTORION_SERVE_SCREENSHOT")
    if shot:
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(shot)


def test_paste_a_blueprint_and_measure_it(url, browser):
    browser.get(url)
    body = browser.find_element(By.TAG_NAME, "body")
    WebDriverWait(browser, 30).until(lambda _: body.get_attribute("data-ready"))
    w = World(5, 8)
    w.place("source", 2, 0, item="copper-plate")
    for x in range(1, 7):
        w.place("transport-belt", 2, x, direction=1)
    w.place("sink", 2, 7, item="copper-plate")
    w.place("transport-belt", 0, 0, direction=1)  # carries nothing: idle
    browser.find_element(By.ID, "tab-paste").click()
    set_value(browser, "paste", "0eNgarbage!!")
    browser.find_element(By.ID, "measure").click()
    WebDriverWait(browser, 10).until(lambda b: "base64" in message(b))
    set_value(browser, "paste", BW.to_string(w))
    browser.find_element(By.ID, "measure").click()
    WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".card .title")
                                     and "Measured" in b.find_element(By.CSS_SELECTOR, ".card .title").text)
    card = browser.find_element(By.CSS_SELECTOR, ".card")
    shown = float(card.find_element(By.CSS_SELECTOR, ".throughput").get_attribute("data-value"))
    assert shown == pytest.approx(throughput(w)) and shown > 0
    assert "sink (2, 7)" in card.text and "1 idle" in card.text and not message(browser)
