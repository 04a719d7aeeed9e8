"""Markdown helpers for the generated pages: escaping for MyST table cells, inline code, numbers."""
from __future__ import annotations

import math
import re
from typing import Any


_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}<>|$#~])")


def md_escape(text: Any) -> str:
    """Text safe inside a MyST table cell: markup characters escaped, no newlines."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def md_code(text: Any) -> str:
    """Text as an inline code span (no escapes work inside one: drop backticks and pipes)."""
    return "`" + str(text).replace("`", "'").replace("|", "/").replace("\n", " ") + "`"


def fmt_number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(fmt_number(v) for v in value[:8])
        return f"[{shown}{', …' if len(value) > 8 else ''}]"
    return str(value)


def _numbers_list(numbers: dict, depth: int = 0) -> list[str]:
    lines = []
    for key, value in numbers.items():
        pad = "  " * depth
        if isinstance(value, dict):
            lines.append(f"{pad}- {md_escape(key)}:")
            lines += _numbers_list(value, depth + 1)
        else:
            lines.append(f"{pad}- {md_escape(key)}: {md_escape(fmt_number(value))}")
    return lines
