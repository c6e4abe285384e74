"""The web playground at `/` in real headless Chromium (Debian's, through Playwright) against a
real lantern serving the default model under two ids: a streamed answer with its figures, Stop
freeing the slot, two models compared, model output rendered as text, screenshots, and no
request leaving the Lantern origin."""

import re
import time

import playwright.sync_api as playwright
import pytest
import requests

from conftest import MODEL, ROOT, Server

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "target" / "playground-screenshots"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("playground")
    (tmp / "two.toml").write_text(f'''
[[models]]
id = "smol-a"
path = "{MODEL}"
parallel = 2
[[models]]
id = "smol-b"
path = "{MODEL}"
parallel = 2
''')
    s = Server("--config", str(tmp / "two.toml"), tmp=tmp)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    import os
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is missing: make deps installs it")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.requested = []
    pg.on("request", lambda r: pg.requested.append(r.url))
    pg.goto(server.base + "/")
    pg.wait_for_selector("#model option[value='smol-a']", state="attached")
    yield pg
    # Nothing the page did went anywhere but the server that served it.
    assert pg.requested and all(u.startswith(server.base + "/") for u in pg.requested), pg.requested
    context.close()


def ask(page, text):
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")


def test_a_streamed_answer_with_its_figures(page):
    page.select_option("#model", "smol-a")
    page.fill("#temperature", "0")
    page.fill("#system", "Answer in one sentence.")
    ask(page, "What is the capital of France?")
    answer = page.locator("#messages li.assistant").last
    page.wait_for_function(
        "() => document.querySelector('#messages li.assistant:last-child .stats').textContent.includes('TTFT')",
        timeout=60000)
    assert "Paris" in answer.locator(".content").inner_text()
    stats = answer.locator(".stats").inner_text()
    assert re.search(r"TTFT \d+ ms", stats) and "tok/s" in stats and "cache " in stats, stats
    assert re.search(r"prompt \d+ \(cached \d+\), completion \d+", stats), stats
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"))
    # The conversation survives a reload (localStorage).
    page.reload()
    page.wait_for_selector("#messages li.assistant")
    assert "Paris" in page.locator("#messages li.assistant").last.inner_text()
    page.click("#clear")
    assert page.locator("#messages li").count() == 0


def busy_slots(server, model):
    text = requests.get(server.base + "/metrics").text
    m = re.search(rf'^lantern_slots_busy{{model="{model}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_stop_ends_the_stream_and_frees_the_slot(page, server):
    page.select_option("#model", "smol-b")
    page.fill("#max_tokens", "2000")
    page.fill("#temperature", "0.8")
    ask(page, "Write a very long story about a lighthouse keeper, with many chapters.")
    page.wait_for_function(
        "() => (document.querySelector('#messages li.assistant:last-child .content') || {}).textContent?.length > 40",
        timeout=60000)
    assert busy_slots(server, "smol-b") >= 1
    page.keyboard.press("Escape")
    page.wait_for_function(
        "() => document.querySelector('#messages li.assistant:last-child .stats').textContent === 'stopped'",
        timeout=10000)
    assert page.is_enabled("#send")
    deadline = time.time() + 5
    while busy_slots(server, "smol-b") and time.time() < deadline:
        time.sleep(0.1)
    assert busy_slots(server, "smol-b") == 0
    page.click("#clear")


def test_two_models_compared_side_by_side(page):
    page.click("#view-compare")
    assert not page.is_visible("#chat") and page.is_visible("#compare")
    panes = page.locator(".pane")
    assert panes.count() == 2
    panes.nth(0).locator("select").select_option("smol-a")
    panes.nth(1).locator("select").select_option("smol-b")
    page.fill("#compare-prompt", "Name a colour.")
    page.click("#compare-send")
    for i in range(2):
        page.wait_for_function(
            f"() => document.querySelectorAll('.pane .stats')[{i}].textContent.includes('TTFT')", timeout=60000)
    texts = [panes.nth(i).locator(".content").inner_text() for i in range(2)]
    assert all(t.strip() for t in texts)
    # Both are the same file at temperature 0: the same answer.
    assert texts[0] == texts[1]
    page.screenshot(path=str(ARTIFACTS / "compare.png"))


def test_model_output_is_rendered_as_text_not_html(page, server):
    page.evaluate("""() => localStorage.setItem('lantern.conversation', JSON.stringify([
        {role: 'user', content: 'x'},
        {role: 'assistant', content: '<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script> **bold** and\\n```js\\nlet a = 1;\\n```'}]))""")
    page.reload()
    page.wait_for_selector("#messages li.assistant")
    content = page.locator("#messages li.assistant .content")
    assert content.locator("img").count() == 0 and content.locator("script").count() == 0
    assert "<img src=x" in content.inner_text()
    assert content.locator("strong").inner_text() == "bold"
    assert content.locator("pre code").inner_text() == "let a = 1;"
    assert page.evaluate("() => window.pwned") is None


def test_server_view_shows_models_and_slots(page):
    page.click("#view-server")
    page.wait_for_selector("#server-table tbody tr")
    rows = page.locator("#server-table tbody tr")
    assert rows.count() == 2
    cells = rows.nth(0).locator("td").all_inner_texts()
    assert cells[0] == "smol-a" and cells[1] == "loaded" and "MiB" in cells[2] and cells[4] == "2"
    assert page.locator("#health").inner_text() == "health: ok"


def test_a_keyed_server_asks_for_the_key(browser, tmp_path):
    s = Server("--api-key", "sk-page", tmp=tmp_path)
    try:
        context = browser.new_context()
        pg = context.new_page()
        pg.goto(s.base + "/playground")
        pg.wait_for_selector("#key-dialog[open]")
        pg.fill("#key", "sk-page")
        pg.click("#key-dialog button")
        pg.wait_for_selector("#model option", state="attached")
        assert pg.evaluate("() => sessionStorage.getItem('lantern.apiKey')") == "sk-page"
        assert pg.evaluate("() => localStorage.getItem('lantern.apiKey')") is None
        context.close()
    finally:
        s.stop()


def wait_reply(page, n):
    page.wait_for_function(
        f"() => [...document.querySelectorAll('#messages li.assistant .stats')].filter(s => s.textContent.includes('TTFT')).length >= {n}",
        timeout=60000)


def test_multi_turn_regenerate_edit_export_and_import(page, tmp_path):
    bodies = []
    page.on("request", lambda r: bodies.append(r.post_data_json) if r.url.endswith("/v1/chat/completions") else None)
    page.select_option("#model", "smol-a")
    page.fill("#temperature", "0")
    page.fill("#max_tokens", "24")
    page.fill("#system", "Answer in one sentence.")
    ask(page, "What is the capital of France?")
    wait_reply(page, 1)
    ask(page, "And of Italy?")
    wait_reply(page, 2)
    # The second request carries the whole conversation.
    assert [m["role"] for m in bodies[-1]["messages"]] == ["system", "user", "assistant", "user"]
    assert bodies[-1]["temperature"] == 0 and bodies[-1]["max_tokens"] == 24
    second = page.locator("#messages li.assistant").nth(1).locator(".content").inner_text()
    page.click("#regenerate")
    page.wait_for_function("() => document.querySelectorAll('#messages li').length === 4 && "
                           "document.querySelector('#messages li:last-child .stats').textContent.includes('TTFT')",
                           timeout=60000)
    assert page.locator("#messages li.assistant").nth(1).locator(".content").inner_text() == second
    with page.expect_download() as download:
        page.click("#export")
    saved = tmp_path / "conversation.json"
    download.value.save_as(saved)
    exported = __import__("json").loads(saved.read_text())
    assert exported["system"] == "Answer in one sentence." and len(exported["messages"]) == 4
    # Editing the first message drops it and everything after, and puts it back in the box.
    page.locator("#messages li.user").first.locator("button", has_text="Edit").click()
    assert page.input_value("#prompt") == "What is the capital of France?"
    assert page.locator("#messages li").count() == 0
    page.set_input_files("#import", str(saved))
    page.wait_for_function("() => document.querySelectorAll('#messages li').length === 4")
    assert page.locator("#messages li.assistant").nth(1).locator(".content").inner_text() == second
    page.click("#clear")


def test_a_phone_sized_viewport_stacks_settings_above_the_conversation(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    pg = context.new_page()
    pg.goto(server.base + "/")
    settings, conversation = pg.locator("#settings").bounding_box(), pg.locator("#conversation").bounding_box()
    assert conversation["y"] >= settings["y"] + settings["height"] - 1
    assert conversation["width"] <= 390 and settings["width"] <= 390
    context.close()
