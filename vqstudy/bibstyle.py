"""Author–year labels in the book's bibliography, to match the author–year citations in the text.

sphinxcontrib-bibtex cites author–year (``bibtex_reference_style: author_year``) but its bibliography
styles label entries [1], [2], ...; this pybtex style labels them "Zhao et al., 2024" and sorts them by
author, year and title. ``_config.yml`` selects it with ``bibtex_default_style: vqstudy_author_year``.
"""
from __future__ import annotations

from typing import Iterator

STYLE_NAME = "vqstudy_author_year"


def _surname(person) -> str:
    parts = person.prelast_names + person.last_names
    return " ".join(str(p).replace("{", "").replace("}", "") for p in parts) or str(person)


def author_year(entry) -> str:
    """'Zhao et al., 2024', 'Zhao and Zou, 2026', 'Mentzer, 2024' (editors when there are no authors)."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    year = entry.fields.get("year", "n.d.")
    if not people:
        names = entry.fields.get("organization") or entry.fields.get("title", entry.key)
    elif len(people) == 1:
        names = _surname(people[0])
    elif len(people) == 2:
        names = f"{_surname(people[0])} and {_surname(people[1])}"
    else:
        names = f"{_surname(people[0])} et al."
    return f"{names}, {year}"


def register() -> None:
    """Make the label and formatting styles known to pybtex (idempotent).

    pybtex comes with the book's tools (the ``book`` extra), so it is imported here, not by the package.
    """
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.unsrt import Style as UnsrtStyle
    from pybtex.style.labels import BaseLabelStyle

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries) -> Iterator[str]:
            seen: dict[str, int] = {}
            for entry in sorted_entries:
                label = author_year(entry)
                seen[label] = seen.get(label, 0) + 1
                # a second "Zhao et al., 2024" becomes "Zhao et al., 2024b" (the first keeps its plain label)
                yield label if seen[label] == 1 else f"{label}{chr(ord('a') + seen[label] - 1)}"

    class AuthorYearStyle(UnsrtStyle):
        default_label_style = "vqstudy_author_year"
        default_sorting_style = "author_year_title"

    for group, name, cls in (("pybtex.style.labels", STYLE_NAME, AuthorYearLabels),
                             ("pybtex.style.formatting", STYLE_NAME, AuthorYearStyle)):
        register_plugin(group, name, cls)
