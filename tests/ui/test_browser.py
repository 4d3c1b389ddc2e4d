"""`sftlab ui` end to end in headless Chromium (Debian's package, driven by Playwright; no browser
download): served to the network (`--host 0.0.0.0`) behind `--auth`, log in, type a message, watch the
answer stream in, send a second message that sees the first, clear the chat, compare side by side;
screenshots go to the test's temporary folder. The slow tier: `make test` installs the browser
first (`make chromium`); without it the test is skipped."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the ui extra (gradio) is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) is not installed")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# Chromium on a machine without network: no background connections, no sandbox as root, no GPU.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium; installed by `make chromium` (part of `make test`), never from here."""
    found = shutil.which("chromium")
    if not found:
        pytest.skip("Debian's chromium is not installed: run `make chromium` (apt-get install chromium fonts-dejavu-core, as root)")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


LOGIN = ("sftlab", "browser-test")


@pytest.fixture
def served_ui(tiny_lora_run, tmp_path):
    """`sftlab ui` on the tiny LoRA checkpoint, its step-4 checkpoint as the base, on a free port of every
    interface, behind a login."""
    port = _free_port()
    log = (tmp_path / "ui.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sftlab.cli",
            "ui",
            "--model",
            str(tiny_lora_run / "checkpoints/last.ckpt"),
            "--base_model",
            str(tiny_lora_run / "checkpoints/step-00000004.ckpt"),
            "--host",
            "0.0.0.0",
            "--auth",
            ":".join(LOGIN),
            "--port",
            str(port),
            "--max_new_tokens",
            "40",
            "--temperature",
            "1.0",
        ],  # the tiny random model's greedy answer is only newlines
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    url = f"http://127.0.0.1:{port}/"
    while not _answers(url):  # as long as the server takes to load the model and start, while it runs
        if server.poll() is not None:
            pytest.fail(f"sftlab ui exited before serving:\n{(tmp_path / 'ui.log').read_text()[-3000:]}")
        time.sleep(0.5)
    assert f"on http://0.0.0.0:{port}, login required (user {LOGIN[0]})" in (tmp_path / "ui.log").read_text()
    yield url
    server.kill()
    server.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url) as response:
            return response.status == 200
    except OSError:
        return False


BOT_TEXTS = """() => Array.from(document.querySelectorAll('#chat [data-testid="bot"]'))
    .map(node => node.innerText.trim()).filter(Boolean)"""
WATCH = """() => {
    window.__seen = [];
    const chat = document.querySelector('#chat');
    new MutationObserver(() => {
        const bots = chat.querySelectorAll('[data-testid="bot"]');
        const last = bots.length ? bots[bots.length - 1].innerText.trim() : '';
        if (last && window.__seen[window.__seen.length - 1] !== last) window.__seen.push(last);
    }).observe(chat, {childList: true, subtree: true, characterData: true});
}"""


def _send(page, text: str, bots: int, answers: int = 1) -> str:
    """Send `text`; wait until the chat shows `bots` answers and the status line reports `answers`
    finished answers (it says `generating` while tokens come); the last answer."""
    page.locator("#message textarea").fill(text)
    page.locator("#message textarea").press("Enter")
    page.wait_for_function(
        f"""() => {{ const status = document.querySelector('#status').innerText;
        return ({BOT_TEXTS})().length === {bots} && !status.includes('generating')
            && (status.match(/tokens in/g) || []).length === {answers}; }}"""
    )
    return page.evaluate(BOT_TEXTS)[-1]


def test_chat_in_a_real_browser(chromium, served_ui, tmp_path):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.set_default_timeout(0)  # waits poll for their condition, however loaded the machine is
        page.goto(served_ui)
        page.get_by_label("username").fill(LOGIN[0])  # Gradio's login page first
        page.get_by_label("password").fill(LOGIN[1])
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector("#message textarea")
        page.evaluate(WATCH)

        first = _send(page, "Give three tips for staying healthy.", bots=1)
        seen = page.evaluate("() => window.__seen")
        assert len(seen) >= 2 and seen[-1] == first, f"no streaming seen: {seen}"  # partial answers, then the whole

        second = _send(page, "Say it again, shorter.", bots=2)
        assert second
        prompt = page.locator("#prompt").inner_text()
        assert "Give three tips for staying healthy." in prompt and "Say it again, shorter." in prompt
        page.screenshot(path=str(tmp_path / "ui_chat.png"), full_page=True)

        page.locator("#clear").click()
        page.wait_for_function(f"() => ({BOT_TEXTS})().length === 0")

        page.locator("#side-by-side input").check()
        page.wait_for_selector("#base-chat", state="visible")
        _send(page, "Hello", bots=1, answers=2)
        base_answers = page.evaluate("""() => Array.from(document.querySelectorAll('#base-chat [data-testid="bot"]'))
            .map(node => node.innerText.trim()).filter(Boolean)""")
        assert len(base_answers) == 1 and len(page.evaluate(BOT_TEXTS)) == 1
        page.screenshot(path=str(tmp_path / "ui_side_by_side.png"), full_page=True)
        browser.close()
