"""The Sphinx extension (``sphinx: extra_extensions: [vqstudy.book]`` in ``_config.yml``): a fresh
toc and pages at every build, and clean notebook pages (papermill's parameter cells hidden on the
text Sphinx reads: the committed notebooks are never modified).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .common import STRICT_ENV, BookError
from .pages import generate_pages
from .stored import _tags
from .toc import write_toc


def _hide_papermill_cells(nb: dict) -> bool:
    """Collapse the parameters cell and papermill's injected cell (which inherits no tags)."""
    changed = False
    for cell in nb.get("cells", []):
        tags = _tags(cell)
        if cell.get("cell_type") == "code" and {"parameters", "injected-parameters"} & set(tags) \
                and not {"hide-cell", "remove-cell"} & set(tags):
            cell.setdefault("metadata", {})["tags"] = tags + ["hide-cell"]
            changed = True
    return changed


def _on_config_inited(app, config) -> None:
    from sphinx.errors import ExtensionError
    from sphinx.util import logging

    root = Path(app.srcdir)
    if not (root / "notebooks").is_dir() or not (root / "book").is_dir():
        return
    log = logging.getLogger(__package__)   # "vqstudy.book", the extension's name in _config.yml
    if write_toc(root):
        log.info("[vqstudy.book] _toc.yml rewritten to list the notebooks present")
    strict = os.environ.get(STRICT_ENV) == "1"
    try:
        for path in generate_pages(root, strict=strict):
            log.info(f"[vqstudy.book] regenerated {path.relative_to(root)}")
    except BookError as exc:
        raise ExtensionError(f"vqstudy.book: {exc}") from None


def _on_source_read(app, docname: str, source: list[str]) -> None:
    if not docname.startswith("notebooks/"):
        return
    try:
        nb = json.loads(source[0])
    except (json.JSONDecodeError, TypeError):
        return
    if _hide_papermill_cells(nb):
        source[0] = json.dumps(nb)


def _asset_key(asset: Any) -> Any:
    if hasattr(asset, "filename") and hasattr(asset, "attributes"):
        return (asset.filename or "", tuple(sorted(asset.attributes.items())))
    return str(asset)


def _on_page_context(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated <script>/<link> entries: sphinx-thebe's inline config is added twice under
    jupyter-book 1 + Sphinx 7.4 (once with filename None, once with ''), and the second
    `const THEBE_JS_URL` is a JavaScript error on every page."""
    for key in ("script_files", "css_files"):
        files = context.get(key)
        if isinstance(files, list):
            seen, unique = set(), []
            for asset in files:
                k = _asset_key(asset)
                if k not in seen:
                    seen.add(k)
                    unique.append(asset)
            files[:] = unique   # in place: later handlers (MathJax) add to this same list


def setup(app):
    """Sphinx entry point (listed in _config.yml). Runs before sphinx-external-toc reads _toc.yml."""
    from .. import bibstyle

    bibstyle.register()   # the bibliography's author-year labels (bibtex_default_style in _config.yml)
    app.add_js_file("vqstudy.js")
    app.connect("config-inited", _on_config_inited, priority=100)
    app.connect("source-read", _on_source_read)
    app.connect("html-page-context", _on_page_context, priority=100)  # emit_firstresult: run early
    return {"parallel_read_safe": True, "parallel_write_safe": True}
