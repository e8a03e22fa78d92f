"""The page in a real browser: Debian's headless Chromium, driven by Selenium, against `voice-journal serve`.

Skipped, with the reason, where Chromium and its driver are not installed
(`make test` installs them where it runs as root, as it does PulseAudio).
"""

from __future__ import annotations

import numpy as np
import pytest

from served_page import CHROMIUM, DRIVER, MISSING, chromium, fake_microphone, serve
from voice_journal import app, config
from voice_journal.audio import pcm
from voice_journal.session.recorder import Recorder
from voice_journal.session.timings import HeardTimings, ReplyTimings
from voice_journal.speech.stt import Transcript

# A browser and a server process: the integration tier, whatever the fixtures load.
pytestmark = [pytest.mark.skipif(not (CHROMIUM and DRIVER), reason=MISSING), pytest.mark.integration]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from voice_journal.store.embedding import Embedder

    settings = config.load(db=tmp_path_factory.mktemp("web") / "j.duckdb", summaries=False)
    embedder = Embedder.load()
    with app.open_journal(settings) as journal:
        sid = journal.begin_session(mode="free", source="test", models={})
        rec = Recorder(journal, sid, embedder)
        for i, text in enumerate(["I argued with my brother about selling our parents' house.",
                                  "Then I walked down to the river."]):
            tone = (np.sin(np.arange(32000) * 2 * np.pi * 220 / 16000) * 6000).astype(np.int16)
            rec.user(pcm.Clip(tone), Transcript(text, "en", 0.98, (), 2.0, 0.2), i * 3.0, i * 3.0 + 2.0,
                     timings=HeardTimings(), engine="test")
            rec.companion("You walked it off by the water.", np.full(22050, 200, np.int16), 22050,
                          timings=ReplyTimings(end_to_first_audio_s=0.7), model="test")
        journal.end_session(sid, status="complete")
    proc, url = serve(settings.db)
    yield url, sid
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def _wait(driver, css: str, timeout: float = 30):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def test_the_page_lists_the_session_and_plays_a_turns_audio(served, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    url, sid = served
    browser.get(url)  # the token becomes a cookie and leaves the address bar
    card = _wait(browser, ".card h3 a")
    assert "?token=" not in browser.current_url and "free" in card.text
    card.click()
    audio = _wait(browser, "#turn-0 audio")
    assert "argued with my brother" in browser.find_element("css selector", "#turn-0").text
    assert "answered in 0.7 s" in browser.find_element("css selector", "#turn-1").text
    browser.execute_script("arguments[0].play()", audio)
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return arguments[0].currentTime", audio) > 0.3)
    assert browser.execute_script("return arguments[0].duration", audio) == pytest.approx(2.0, abs=0.05)
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]  # no CSP or script errors


def test_a_search_in_the_page_finds_a_paraphrase_and_marks_the_words(served, browser):
    url, sid = served
    browser.get(url)
    _wait(browser, ".card h3 a")
    box = browser.find_element("css selector", "#q")
    box.send_keys("a fight with my brother over the family house")
    box.submit()
    hit = _wait(browser, ".card a mark")
    link = hit.find_element("xpath", "..")
    assert "selling our parents" in link.text and link.get_attribute("href").endswith(f"#/session/{sid}?turn=0")


def test_without_the_token_the_browser_gets_nothing(served, browser):
    url, _ = served
    browser.delete_all_cookies()
    browser.get(url.split("?")[0] + "api/sessions")
    assert "brother" not in browser.page_source and "needs the link" in browser.page_source


# -- talking in the page: Chromium's fake microphone plays a recording -------------------------


@pytest.fixture(scope="module")
def talk_server(tmp_path_factory):
    """`serve --fast` on an empty journal: the page's sessions run on the small models."""
    db = tmp_path_factory.mktemp("talk") / "j.duckdb"
    proc, url = serve(db, "--fast")
    yield url, db
    proc.terminate()
    proc.wait(timeout=60)


def talk_in_the_page(url: str, wav, turns: int = 1):
    """Hold a session in a fresh headless Chromium whose microphone plays ``wav``: the page's talk view
    after ``turns`` of the person's turns were answered (the session still open), and the driver."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium(*fake_microphone(wav))
    driver.get(url)
    _wait(driver, "main")
    driver.get(url.split("?")[0] + "#/talk")
    _wait(driver, "#talk-start").click()
    # The greeting is a companion turn too: then each of theirs, and its answer. Waiting on the page,
    # not the clock: the first session loads the models (tens of seconds on two cores).
    WebDriverWait(driver, 240).until(
        lambda d: len(d.find_elements("css selector", "#talk-log .turn.user")) >= turns
        and len(d.find_elements("css selector", "#talk-log .turn.assistant")) >= turns + 1
        or d.find_element("css selector", "#talk-state").get_attribute("data-state") == "error")
    return driver


def end_in_the_page(driver) -> int:
    _wait(driver, "#talk-end").click()
    saved = _wait(driver, "#talk-saved a", timeout=120)
    return int(saved.get_attribute("href").rsplit("/", 1)[1])


def test_a_session_held_in_the_browser_is_answered_aloud_and_archived(talk_server, voice, tmp_path):
    from conftest import spoken

    url, db = talk_server
    wav = tmp_path / "me.wav"
    pcm.write_wav(wav, spoken(voice, ["Today I finally finished painting the garden fence."], pause_s=3))
    driver = talk_in_the_page(url, wav)
    try:
        state = driver.find_element("css selector", "#talk-state")
        assert state.get_attribute("data-state") != "error", state.text
        said = driver.find_element("css selector", "#talk-log .turn.user").text
        assert "fence" in said.lower()
        assert int(driver.find_element("css selector", "#talk").get_attribute("data-voice-samples")) > 22050
        sid = end_in_the_page(driver)
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]  # no CSP or script errors
    finally:
        driver.quit()
    with app.open_journal(config.load(db=db), read_only=True) as journal:
        turns = journal.turns(sid, with_audio=True)
    users = [t for t in turns if t.role == "user"]
    assert len(users) == 1 and "fence" in users[0].text.lower() and users[0].audio_flac
    assert turns[-1].role == "assistant" and turns[-1].text and turns[-1].audio_flac


def test_a_crisis_said_in_the_browser_gets_the_fixed_message(talk_server, voice, tmp_path):
    from conftest import spoken
    from voice_journal.companion import safety

    url, db = talk_server
    wav = tmp_path / "crisis.wav"  # not a phrase of the crisis corpus
    pcm.write_wav(wav, spoken(voice, ["I wrote goodbye notes to my sister and my dad and hid them with the rope "
                                      "in the garage."], pause_s=3))
    driver = talk_in_the_page(url, wav)
    try:
        alert = _wait(driver, "#talk-log [role=alert]")
        assert alert.text.startswith(safety.messages.CRISIS_OPENING[:40])
        answer = driver.find_elements("css selector", "#talk-log .turn.assistant")[-1].text
        assert safety.messages.CRISIS_OPENING[:40] in answer
        sid = end_in_the_page(driver)
    finally:
        driver.quit()
    with app.open_journal(config.load(db=db), read_only=True) as journal:
        assert journal.flags().get(sid)
