"""The HTML page of `vqstudy diagnose --report` in a real browser: no console error, every figure loads.

Same headless Chromium and launch settings as the book's browser test (skipped only when
/usr/bin/chromium or the playwright client is absent and CI is not "true").
"""
from __future__ import annotations

from urllib.parse import urlparse

import numpy as np
import torch

from test_browser import CHROMIUM, CHROMIUM_ARGS, LOCAL_SCHEMES, _require_browser
from vqstudy import cli


def test_report_page_opens_cleanly(tmp_path):
    _require_browser()
    from playwright.sync_api import sync_playwright

    rng = np.random.default_rng(0)
    z = rng.normal(size=(4000, 8)).astype(np.float32)
    codes = np.vstack([z[:24], np.full((8, 8), 50.0, dtype=np.float32)])  # 8 dead codes far from the data
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "labels.npy", rng.integers(0, 4, len(z)))
    torch.save({"quantizer.codebook": torch.from_numpy(codes)}, tmp_path / "tokenizer.pt")
    assert cli.main(["diagnose", str(tmp_path / "tokenizer.pt"), "--embeddings", str(tmp_path / "z.npy"),
                     "--labels", str(tmp_path / "labels.npy"), "--report", str(tmp_path / "report")]) == 0
    page_path = tmp_path / "report" / "index.html"

    errors, external = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def route(r):
            if urlparse(r.request.url).scheme in LOCAL_SCHEMES:
                r.continue_()
            else:
                external.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
        page.goto(page_path.as_uri(), wait_until="load")
        page.evaluate("async () => Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)))")
        images = page.evaluate("""() => Array.from(document.images).map(img => (
            {complete: img.complete, width: img.naturalWidth, alt: img.alt}))""")
        verdicts = page.evaluate("() => Array.from(document.querySelectorAll('td.healthy, td.watch, td.collapsed'))"
                                 ".map(td => td.innerText)")
        browser.close()
    assert errors == [] and external == []
    assert len(images) == 3, images  # code usage, spectra, principal plane
    assert all(i["complete"] and i["width"] > 100 for i in images), images
    assert len(verdicts) == 2
