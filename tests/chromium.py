"""Headless Chromium (Debian's `chromium` and `chromium-driver`, driven with selenium) on the live-captions page, its
microphone a file: for tests/test_webpage.py and scripts/bench_webpage.py."""

from __future__ import annotations

import importlib.util
import os
import shutil
import time

FAKE_RATE = 16000  # what the page sends, whatever the browser's own rate


def unavailable() -> str | None:
    """Why a browser test cannot run here, or None."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (the dev extra)"
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return "Chromium is not installed (apt-get install chromium chromium-driver; ./setup.sh --dev does)"
    return None


def launch(microphone: str | None = None, downloads: str | None = None, allow_microphone: bool = True,
           loop: bool = False):
    """A headless Chromium whose microphone plays `microphone` (a WAV file) once, then silence (or over and over with
    loop). With allow_microphone False the page's request for it is refused, as a user who says no refuses it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=960,720",
                "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    if microphone:
        options.add_argument("--use-fake-device-for-media-stream")
        options.add_argument(f"--use-file-for-fake-audio-capture={os.path.abspath(microphone)}{'' if loop else '%noloop'}")
    prefs = {}
    if allow_microphone:
        options.add_argument("--use-fake-ui-for-media-stream")  # says yes to the permission prompt
    else:
        prefs["profile.default_content_setting_values.media_stream_mic"] = 2  # blocked
    if downloads:
        prefs.update({"download.default_directory": os.path.abspath(downloads), "download.prompt_for_download": False})
    if prefs:
        options.add_experimental_option("prefs", prefs)
    # An explicit driver and browser: selenium then never looks for (or downloads) one of its own.
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    if downloads:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow",
                                                            "downloadPath": os.path.abspath(downloads)})
    return driver


class CaptionsPage:
    """The page as a user sees it: its button, state, notice, partial line and transcript."""

    def __init__(self, driver, url: str):
        self.driver = driver
        driver.get(url)
        self.wait(lambda: self.text("state"), 20, "the page did not load")

    def element(self, element_id: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id: str) -> str:
        return self.element(element_id).text

    def state(self) -> str:
        return self.element("state").get_attribute("data-state")

    def click(self, element_id: str = "toggle") -> None:
        self.element(element_id).click()

    def captured_seconds(self) -> float:
        """Microphone audio that reached the page so far: the clock the transcript's times count in."""
        return self.driver.execute_script("return page.captured") / FAKE_RATE

    def final_count(self) -> int:
        return self.driver.execute_script("return document.querySelectorAll('#finals li').length")

    def finals(self) -> list[dict]:
        from selenium.webdriver.common.by import By

        def number(el, name):
            return float(el.get_attribute(f"data-{name}"))

        return [{"start": number(li, "start"), "end": number(li, "end"),
                 "text": li.find_element(By.CLASS_NAME, "text").text,
                 "time": li.find_element(By.TAG_NAME, "time").text,
                 "words": [{"text": w.text, "start": number(w, "start"), "end": number(w, "end"),
                            "confidence": number(w, "confidence")}
                           for w in li.find_elements(By.CLASS_NAME, "word")]}
                for li in self.driver.find_elements(By.CSS_SELECTOR, "#finals li")]

    def wait(self, condition, timeout: float, what: str, poll: float = 0.1):
        deadline = time.monotonic() + timeout
        while not (value := condition()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} within {timeout:g} s (state {self.text('state')!r}, "
                                     f"notice {self.text('notice')!r})")
            time.sleep(poll)
        return value

    def listen(self, seconds: float, timeout: float = 120.0) -> list[dict]:
        """Start, let the microphone play `seconds` of audio, stop, and return the transcript once the server has
        sent its last finals. Also records when each partial and final first appeared (self.events)."""
        self.events: list[tuple[float, float, str, str]] = []  # (wall time, captured seconds, kind, text)
        self.click()
        self.wait(lambda: self.state() == "connected", 30, "the page did not connect")
        deadline = time.monotonic() + timeout
        seen_partial, seen_finals = "", 0
        while self.captured_seconds() < seconds:
            if time.monotonic() > deadline:
                raise AssertionError(f"the microphone delivered {self.captured_seconds():.1f} s of {seconds:g} s")
            partial, finals = self.text("partial"), self.final_count()
            now, captured = time.monotonic(), self.captured_seconds()
            if partial and partial != seen_partial:
                self.events.append((now, captured, "partial", partial))
                seen_partial = partial
            if finals > seen_finals:
                self.events.append((now, captured, "final", self.finals()[-1]["text"]))
                seen_finals = finals
            time.sleep(0.05)
        self.click()
        self.wait(lambda: self.state() == "idle", 60, "the page did not stop")
        return self.finals()
