"""The report's sample browser in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by
Selenium opens the report of a demo corpus with real media (an imported run, 3 samples' media embedded): sorting a
column reorders the rows, a category filter shows exactly that category's rows, clicking a misled sample shows its
text and <audio>/<video> elements whose media load (an embedded sample: duration = the segment's length; a linked
one: the whole file, starting at the segment's start and pausing at its end), and nothing is fetched but file: and
data: URLs. Skipped, with the reason, where selenium, chromium or chromedriver are missing (.ci/run installs them).

Slow (Chromium starts in seconds): `.ci/run` runs it after `make test` (`pytest -m slow tests/analysis/test_browser.py`).
Set MIXSIG_TEST_SHOTS=DIR to keep screenshots of the browser with a sample open."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.analysis.browser_corpus import N_MISLED, make_report

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _missing(why: str):
    """Skip with the reason; fail instead under MIXSIG_REQUIRE_BROWSER=1 (.ci/run, where it was installed)."""
    if os.environ.get("MIXSIG_REQUIRE_BROWSER") == "1":
        pytest.fail(f"MIXSIG_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


def _driver():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install -c constraints.txt -e '.[test]')")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            _missing(f"{path} not found: apt-get install {package} (.ci/run installs it)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                "--window-size=1300,1000", "--autoplay-policy=no-user-gesture-required",
                # any attempt at the network fails fast instead of waiting (and is still in the performance log)
                "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    driver = _driver()  # skips before building anything when the browser is missing
    try:
        rep = make_report(tmp_path_factory.mktemp("browser"))
        rep["json"] = json.loads((rep["out"] / "report.json").read_text())
        driver.get(rep["html"].as_uri())
        yield driver, rep
    finally:
        driver.quit()


def _js(driver, code, *args):
    return driver.execute_script(code, *args)


def _cells(driver, key):
    """The shown rows' cells of column ``key``."""
    return _js(driver, """var key = arguments[0], ths = [].slice.call(document.querySelectorAll('#mx-head th'));
        var j = ths.findIndex(function (th) { return th.dataset.key === key; });
        return [].map.call(document.querySelectorAll('#mx-rows tr'), function (tr) { return tr.children[j].textContent; });""",
               key)


def _select(driver, which, value):
    _js(driver, "var s=document.getElementById(arguments[0]); s.value=arguments[1]; s.onchange()", which, value)


def test_every_sample_is_a_row_and_a_header_click_sorts(page):
    driver, rep = page
    n = rep["json"]["n_samples"]
    assert n == len(rep["rows"]) and driver.find_element("id", "mx-count").text == f"{n} matching of {n} samples"
    key = "conf[text+audio+video]"
    before = [float(x) for x in _cells(driver, key)]
    th = driver.find_element("css selector", f"#mx-head th[data-key='{key}']")
    th.click()
    up = [float(x) for x in _cells(driver, key)]
    assert up == sorted(before) and up != before
    th.click()
    assert [float(x) for x in _cells(driver, key)] == sorted(before, reverse=True)
    driver.find_element("css selector", "#mx-head th[data-key='id']").click()
    assert _cells(driver, "id") == sorted(rep["rows"])


def test_a_category_filter_shows_exactly_that_categorys_rows(page):
    driver, rep = page
    counts = rep["json"]["disagreement"]["categories"]
    assert counts["misled"] == N_MISLED
    options = _js(driver, "return [].map.call(document.getElementById('mx-f-category').options, "
                          "function (o) { return o.value; })")
    assert options == ["", *sorted(c for c, k in counts.items() if k)]  # every category present, and all
    for cat, k in counts.items():
        if not k:
            continue
        _select(driver, "mx-f-category", cat)
        shown = _cells(driver, "category")
        assert len(shown) == k and set(shown) <= {cat}, cat
    _select(driver, "mx-f-category", "")
    driver.find_element("id", "mx-f-text").send_keys("demo00003")
    assert _cells(driver, "id") == ["demo00003"]
    _js(driver, "var t=document.getElementById('mx-f-text'); t.value=''; t.oninput()")
    assert len(_cells(driver, "id")) == rep["json"]["n_samples"]


def _open(driver, sid):
    driver.find_element("css selector", "#mx-f-text").clear()
    _js(driver, "var t=document.getElementById('mx-f-text'); t.value=arguments[0]; t.oninput()", sid)
    driver.find_element("css selector", "#mx-rows tr").click()
    detail = driver.find_element("id", "mx-detail")
    assert detail.is_displayed()
    return detail


def _media_state(driver, kind, timeout=10.0):
    """readyState, duration, currentTime, src of the open sample's <audio>/<video>, once it has its metadata."""
    t0 = time.time()
    while True:
        st = _js(driver, "var e=document.getElementById('mx-'+arguments[0]); return e && "
                         "{ready: e.readyState, duration: e.duration, time: e.currentTime, src: e.src, "
                         "error: e.error && e.error.code}", kind)
        if st is None or st["ready"] >= 1 or st["error"] or time.time() - t0 > timeout:
            return st
        time.sleep(0.05)


def test_an_embedded_misled_sample_shows_its_text_and_plays_its_segment(page):
    driver, rep = page
    misled = {r["id"] for r in rep["json"]["top"]["misled"]}
    sid = next(s for s in rep["json"]["browser"]["embedded"] if s in misled)
    row = rep["rows"][sid]
    detail = _open(driver, sid)
    assert row["text"] in detail.text and "misled" in detail.text and "(embedded)" in detail.text
    length = float(row["end"]) - float(row["start"])
    for kind in ("audio", "video"):
        st = _media_state(driver, kind)
        assert st["src"].startswith(f"data:{kind}/webm;base64,")
        assert st["ready"] >= 1 and st["error"] is None, st  # HAVE_METADATA
        assert abs(st["duration"] - length) < 0.1, (kind, st["duration"], length)
    _shot(driver, "browser-embedded-sample.png")


def test_a_linked_misled_sample_plays_only_its_segment_of_the_file(page):
    driver, rep = page
    embedded = set(rep["json"]["browser"]["embedded"])
    sid = next(r["id"] for r in rep["json"]["top"]["misled"] if r["id"] not in embedded)
    row = rep["rows"][sid]
    detail = _open(driver, sid)
    assert row["text"] in detail.text and "(linked: ../corpus/audio/" in detail.text
    start, end = float(row["start"]), float(row["end"])
    for kind in ("audio", "video"):
        st = _media_state(driver, kind)
        assert st["ready"] >= 1 and st["error"] is None, st
        assert st["src"] == (rep["out"].parent / "corpus" / kind).as_uri() + "/" + Path(row[kind]).name + \
            f"#t={start:g},{end:g}"
        assert abs(st["duration"] - float(row["duration"])) < 0.1  # the whole file is linked ...
        assert abs(st["time"] - start) < 0.1  # ... and opens at the segment's start
    # ... and stops at the segment's end: play the last 0.3 s of the segment
    _js(driver, "var e=document.getElementById('mx-audio'); e.currentTime=arguments[0]; e.play()", end - 0.3)
    t0 = time.time()  # 0.3 s of playback; up to 30 s where the CI machine is busy
    while not _js(driver, "return document.getElementById('mx-audio').paused") and time.time() - t0 < 30:
        time.sleep(0.05)
    assert _js(driver, "return document.getElementById('mx-audio').paused"), "still playing after 30 s"
    stopped = _js(driver, "return document.getElementById('mx-audio').currentTime")
    assert abs(stopped - end) < 0.1 and end < float(row["duration"]) - 0.2, (stopped, end)
    _shot(driver, "browser-linked-sample.png")


def test_the_page_fetches_nothing_but_file_and_data_urls(page):
    driver, rep = page
    linked = next(r for r in rep["rows"] if r not in rep["json"]["browser"]["embedded"])
    _open(driver, linked)  # (run alone, this test still opens a linked sample)
    _media_state(driver, "audio")
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    assert urls and any(u.startswith("file:") and u.endswith(".wav") for u in urls)  # the log does see requests
    assert [u for u in urls if not u.startswith(("file:", "data:"))] == []


def _shot(driver, name):
    folder = os.environ.get("MIXSIG_TEST_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        _js(driver, "document.getElementById('mx-browser').scrollIntoView()")
        driver.save_screenshot(str(Path(folder) / name))


def test_many_rows_are_counted_and_drawn_a_page_at_a_time(page, tmp_path):
    from tests.analysis.helpers import planted

    from mixsig.analysis import analyse, write_report

    driver, _ = page
    inp, _ = planted(n=450, seed=8)
    result = analyse(inp, split="test", n_boot=0, embed_media=0)
    html = write_report(result, tmp_path / "r", plots=False)["html"]
    driver.get(html.as_uri())
    try:
        count = driver.find_element("id", "mx-count")
        assert count.text == "450 matching of 450 samples, the first 200 shown" and len(_cells(driver, "id")) == 200
        driver.find_element("id", "mx-more").click()
        assert len(_cells(driver, "id")) == 400
        driver.find_element("id", "mx-all").click()
        assert len(_cells(driver, "id")) == 450 and not driver.find_element("id", "mx-all").is_displayed()
        k = result["disagreement"]["categories"]["agreement"]
        _select(driver, "mx-f-category", "agreement")  # a new filter: its count, its first page
        assert count.text.startswith(f"{k} matching of 450 samples") and len(_cells(driver, "id")) == min(k, 200)
    finally:
        driver.back()
