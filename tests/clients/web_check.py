"""Drives the gateway's web chat page in a real headless Chromium (Debian's, through
Playwright) at a phone's viewport, as a person would: enter the token, send messages,
watch the answer stream in, see a tool chip, reload, stop a run, try a wrong token.

    web_check.py URL TOKEN SCREENSHOT_PATH [--chromium /usr/bin/chromium] [--restart-dir DIR]

With --restart-dir the script also checks reconnecting: it creates DIR/restart, and the
caller restarts the gateway on the same port, then creates DIR/restarted.

Prints one JSON report on stdout for tests/web.rs to assert on; exits 0 once the report is
written (the Rust test judges it), 3 on usage or setup errors.
"""

import argparse
import json
import os
import sys
import time

from playwright.sync_api import sync_playwright

PHONE = {"width": 390, "height": 844}


def last_answer(page):
    """(text, state) of the newest assistant bubble."""
    return page.evaluate(
        """() => {
            const all = document.querySelectorAll('.msg.assistant');
            const m = all[all.length - 1];
            return m ? [m.querySelector('.text').textContent, m.dataset.state || ''] : ['', ''];
        }"""
    )


def send(page, text):
    page.fill("#input", text)
    page.press("#input", "Enter")


def wait_done(page, timeout_s=30):
    """Samples the newest answer every 100 ms until it is no longer streaming."""
    samples = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text, state = last_answer(page)
        samples.append({"len": len(text), "state": state})
        if state and state != "streaming":
            return text, state, samples
        time.sleep(0.1)
    raise TimeoutError(f"no final answer within {timeout_s} s; last samples {samples[-3:]}")


def wait_until(page, js, timeout_s=15):
    """Polls a JS expression with page.evaluate: the page's CSP forbids the eval that
    Playwright's wait_for_function would use."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(js):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout_s} s: {js}")
        time.sleep(0.05)


def login(page, url, token):
    page.goto(url)
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("token")
    ap.add_argument("screenshot")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--restart-dir")
    a = ap.parse_args()
    report = {"console_errors": []}

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, args=["--no-sandbox"], headless=True)
        report["browser"] = browser.version
        ctx = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
        page = ctx.new_page()
        page.on("console", lambda m: m.type == "error" and report["console_errors"].append(m.text))
        page.on("pageerror", lambda e: report["console_errors"].append(str(e)))

        login(page, a.url, a.token)
        page.wait_for_selector("#status[data-state=online]", timeout=15000)
        report["connected"] = True
        report["session_label"] = page.text_content("#session")
        report["empty_hint"] = page.text_content("#log")

        # Streaming: the fake provider writes "slow " 40 times, 100 ms apart.
        send(page, "slow")
        text, state, samples = wait_done(page)
        partial = sorted({s["len"] for s in samples if s["state"] == "streaming" and s["len"] > 0})
        report["stream"] = {"final_text": text, "state": state, "partial_lengths": partial, "samples": len(samples)}

        # Tool activity: "clock" makes the fake call current_time.
        send(page, "clock")
        text, state, _ = wait_done(page)
        chips = page.evaluate(
            """() => {
                const all = document.querySelectorAll('.msg.assistant');
                return [...all[all.length - 1].querySelectorAll('.chip')]
                    .map(e => ({name: e.textContent, cls: e.className}));
            }"""
        )
        report["tool"] = {"final_text": text, "state": state, "chips": chips}

        # Layout at phone width: nothing wider than the screen, the input at the bottom.
        report["layout"] = page.evaluate(
            """() => {
                const r = document.getElementById('composer').getBoundingClientRect();
                return {scrollWidth: document.documentElement.scrollWidth, innerWidth: innerWidth,
                        composerBottom: Math.round(r.bottom), innerHeight: innerHeight};
            }"""
        )
        page.screenshot(path=a.screenshot, full_page=False)
        report["screenshot"] = a.screenshot
        light_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        page.emulate_media(color_scheme="dark")
        dark = a.screenshot.replace(".png", "-dark.png")
        page.screenshot(path=dark)
        report["dark"] = {"screenshot": dark, "light_bg": light_bg,
                          "dark_bg": page.evaluate("getComputedStyle(document.body).backgroundColor")}
        page.emulate_media(color_scheme="light")
        page.set_viewport_size({"width": 375, "height": 667})
        report["layout_375"] = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        page.set_viewport_size(PHONE)

        # History across reloads (the token is remembered; no login this time).
        page.reload()
        page.wait_for_selector("#status[data-state=online]", timeout=15000)
        wait_until(page, "document.querySelectorAll('.msg').length >= 4")
        report["login_after_reload"] = page.is_visible("#login")
        report["history"] = page.eval_on_selector_all(
            ".msg", "els => els.map(e => [e.classList.contains('user') ? 'user' : 'assistant', e.querySelector('.text').textContent])"
        )

        # The gateway restarts: the page shows it is offline, reconnects by itself and
        # shows the (stored) history again.
        if a.restart_dir:
            open(os.path.join(a.restart_dir, "restart"), "w").close()
            page.wait_for_selector("#status:not([data-state=online])", timeout=15000)
            offline = page.text_content("#status")
            send_disabled = page.is_disabled("#send")
            deadline = time.monotonic() + 30
            while not os.path.exists(os.path.join(a.restart_dir, "restarted")):
                if time.monotonic() > deadline:
                    raise TimeoutError("the gateway was not restarted within 30 s")
                time.sleep(0.05)
            page.wait_for_selector("#status[data-state=online]", timeout=20000)
            wait_until(page, "document.querySelectorAll('.msg').length >= 4")
            report["reconnect"] = {"offline_status": offline, "send_disabled": send_disabled,
                                   "messages": page.evaluate("document.querySelectorAll('.msg').length")}

        # Model text is text: markup stays inert, code blocks scroll inside their bubble.
        send(page, "<img src=x onerror=window.pwned=1> and `inline` then ```\n" + "x" * 300 + "\n```")
        text, state, _ = wait_done(page)
        report["markup"] = page.evaluate(
            """() => {
                const all = document.querySelectorAll('.msg.assistant');
                const m = all[all.length - 1];
                return {imgs: document.querySelectorAll('#log img').length, pwned: window.pwned === 1,
                        pre: m.querySelectorAll('pre code').length, inline: m.querySelectorAll('.text > code').length,
                        shows_tag: m.textContent.includes('<img src=x'),
                        scrollWidth: document.documentElement.scrollWidth, innerWidth: innerWidth};
            }"""
        )

        # Stop: abort a slow answer once it has started.
        send(page, "slow again")
        wait_until(
            page,
            "(() => { const a = document.querySelectorAll('.msg.assistant');"
            " return a[a.length - 1].querySelector('.text').textContent.length > 10; })()",
        )
        page.click("#stop")
        text, state, _ = wait_done(page)
        report["stop"] = {"state": state, "len": len(text), "send_visible": page.is_visible("#send")}
        ctx.close()

        # A wrong token: the error is shown and the token asked for again.
        ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
        page = ctx.new_page()
        login(page, a.url, "definitely-the-wrong-token")
        page.wait_for_selector("#login-error:not(:empty)", timeout=15000)
        report["wrong_token"] = {
            "error": page.text_content("#login-error"),
            "login_visible": page.is_visible("#login"),
            "status": page.get_attribute("#status", "data-state"),
            "stored_token": page.evaluate("localStorage.getItem('skynet.token')"),
        }
        ctx.close()
        browser.close()

    print(json.dumps(report))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the report says what broke; the Rust test shows it
        print(json.dumps({"failed": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
