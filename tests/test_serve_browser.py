"""The web page in a real headless Chromium: draw five Pokemon, then upscale an upload.

Both the page and the API docs must run under the app's Content-Security-Policy: the browser's
console is checked for violations.

Needs Debian's `chromium` and `chromium-driver` (tests/install_browser.sh installs them, and
the README's test command runs it). Without them the test skips, saying so, except on CI
(`CI` set), where a missing browser is a failure: there it must run.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image
from serve_helpers import running_server

from kerasr.serve import ServedGenerator, ServedUpscaler, ServeSettings, create_app

selenium = pytest.importorskip("selenium", reason="selenium is in the dev extra")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests may run as root (CI, containers)
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,900",
)


def find_browser() -> tuple[str, str]:
    browser = next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
    )
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    reason = (
        "no headless Chromium found: run tests/install_browser.sh "
        "(Debian chromium + chromium-driver)"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def sprite_generator(seeds):
    """Stands in for a DCGAN: a coloured disc whose hue and size come from the seed."""
    images = []
    yy, xx = np.mgrid[:32, :32]
    for seed in seeds:
        rng = np.random.default_rng(seed)
        colour = rng.integers(40, 230, 3)
        radius = rng.integers(6, 14)
        inside = (yy - 16) ** 2 + (xx - 16) ** 2 < radius**2
        image = np.full((32, 32, 3), 255, np.uint8)
        image[inside] = colour
        images.append(image)
    return np.stack(images)


@pytest.fixture(scope="module")
def server_url():
    from kerasr.models import RRDBNet
    from kerasr.upscaling.inference import Upscaler

    model = RRDBNet(num_basic_blocks=1, rrdb_channels=8, growth_channels=4)
    model.build((None, None, None, 3))
    upscaler = Upscaler(model)
    app = create_app(
        [
            ServedGenerator("sprites", "Coloured discs, one per seed.", 32, sprite_generator),
            ServedGenerator("sprites-again", "The same discs, second tab.", 32, sprite_generator),
        ],
        [ServedUpscaler("tiny-x4", "A one-block test model.", upscaler.scale, upscaler.upscale)],
        ServeSettings(max_pixels=64 * 64),
    )
    with running_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary, driver_path = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    # The console is read back to catch Content-Security-Policy violations.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, timeout=30):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda _: condition())


def drawn_images(driver):
    """(seed, src) of each card whose image has loaded."""
    return driver.execute_script(
        """return [...document.querySelectorAll('#gallery .card')]
             .filter(c => c.querySelector('img').complete && c.querySelector('img').naturalWidth)
             .map(c => [c.querySelector('.seed').textContent, c.querySelector('img').src]);"""
    )


def policy_violations(driver):
    """Console messages of this page about the Content-Security-Policy (read once each)."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]
    ]


def test_draw_five_then_upscale_an_upload(browser, server_url, tmp_path):
    driver = browser
    driver.get(server_url)
    wait_for(driver, lambda: driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))

    # One tab per generator, the first selected; each has a legend that shows on hover.
    tabs = driver.find_elements(By.CSS_SELECTOR, "#generator-tabs .model-tab")
    assert [t.get_attribute("data-model") for t in tabs] == ["sprites", "sprites-again"]
    tooltip = tabs[1].find_element(By.CSS_SELECTOR, ".tooltip")
    assert not tooltip.is_displayed()
    ActionChains(driver).move_to_element(tabs[1].find_element(By.CSS_SELECTOR, ".legend")).perform()
    wait_for(driver, tooltip.is_displayed)
    assert tooltip.text.startswith("The same discs, second tab.")
    tabs[1].click()
    assert tabs[1].get_attribute("aria-selected") == "true"

    # Draw: five images, each labelled with its seed.
    driver.find_element(By.ID, "draw").click()
    wait_for(driver, lambda: len(drawn_images(driver)) == 5)
    cards = drawn_images(driver)
    seeds = [int(label.removeprefix("seed ")) for label, _ in cards]
    assert len(set(seeds)) == 5
    assert all(src.startswith("data:image/png;base64,") for _, src in cards)
    assert driver.find_element(By.ID, "gen-progress").get_attribute("hidden") is not None

    # Clicking a seed makes it the start seed: drawing again reproduces that picture first.
    driver.find_elements(By.CSS_SELECTOR, "#gallery .seed")[2].click()
    assert driver.find_element(By.ID, "seed").get_attribute("value") == str(seeds[2])
    driver.find_element(By.ID, "draw").click()
    wait_for(
        driver, lambda: drawn_images(driver) and drawn_images(driver)[0][0] == f"seed {seeds[2]}"
    )
    assert drawn_images(driver)[0][1] == cards[2][1]

    # Drawn images can be upscaled x4 on the way.
    driver.find_element(By.ID, "gen-upscale").click()
    assert driver.find_element(By.ID, "gen-upscaler").is_enabled()
    driver.find_element(By.ID, "draw").click()
    wait_for(
        driver,
        lambda: driver.execute_script(
            "const imgs = [...document.querySelectorAll('#gallery .card img')];"
            "return imgs.length === 5 && imgs.every(i => i.complete && i.naturalWidth === 128);"
        ),
    )

    # Upscale: upload a 24x16 picture, get the x4 result beside it, ready to download.
    driver.find_element(By.ID, "tab-upscale").click()
    upload = tmp_path / "little.png"
    Image.fromarray(sprite_generator([3])[0][:16, :24]).save(upload)
    driver.find_element(By.ID, "file").send_keys(str(upload))
    button = driver.find_element(By.ID, "upscale")
    wait_for(driver, button.is_enabled)
    button.click()
    wait_for(driver, lambda: driver.find_element(By.ID, "compare").get_attribute("data-ready"))
    after = driver.find_element(By.ID, "after")
    assert driver.execute_script(
        "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", after
    ) == [96, 64]
    download = driver.find_element(By.ID, "download")
    assert download.is_displayed()
    assert download.get_attribute("download") == "little_x4.png"
    assert download.get_attribute("href").startswith("blob:")
    assert "96×64" in driver.find_element(By.ID, "result-info").text

    # The slider moves the divider between before and after.
    slider = driver.find_element(By.ID, "slider")
    driver.execute_script(
        "arguments[0].value = 20; arguments[0].dispatchEvent(new Event('input'))", slider
    )
    stage = driver.find_element(By.CSS_SELECTOR, ".compare-stage").rect
    divider = driver.find_element(By.ID, "divider").rect
    assert divider["x"] + divider["width"] / 2 - stage["x"] == pytest.approx(
        0.2 * stage["width"], abs=2
    )

    # An image over the pixel limit is refused with the reason, before any upload.
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((80, 80, 3), np.uint8)).save(big)
    driver.find_element(By.ID, "file").send_keys(str(big))
    alert = driver.find_element(By.ID, "alert")
    wait_for(driver, alert.is_displayed)
    assert "6,400 pixels" in alert.text and "at most 4,096" in alert.text
    assert not button.is_enabled()
    # All of it ran under the app's Content-Security-Policy without a violation.
    assert policy_violations(driver) == []


def test_the_api_docs_render_offline_under_the_policy(browser, server_url):
    driver = browser
    driver.get(server_url + "/docs")
    # Swagger UI, from the files this server ships, lists every endpoint of the schema.
    wait_for(driver, lambda: len(driver.find_elements(By.CSS_SELECTOR, ".opblock")) >= 4)
    paths = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/api/generate", "/api/upscale", "/api/models", "/healthz"} <= paths
    assert policy_violations(driver) == []
