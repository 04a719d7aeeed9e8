"""The Jupyter Book around the chapters: table of contents, generated pages, main job.

What this package owns, one module per concern:

- :mod:`.toc` -- :func:`write_toc`: ``_toc.yml`` whose chapters part lists exactly
  the notebooks present in ``notebooks/`` (sorted by name);
- :mod:`.stored` -- what a notebook's *stored* run says (its parameters, its
  printed output, whether it has outputs at all);
- :mod:`.paper` -- the paper's side of the claims;
- :mod:`.results` -- :func:`load_results`: the results file of every chapter,
  checked against the notebook's stored run (see :func:`check_results`); a
  missing, malformed (the file's own checks are :mod:`vqstudy.results`') or
  stale file is a :class:`BookError` naming the file and the fix;
- :mod:`.markdown` and :mod:`.pages` -- :func:`claims_page`,
  :func:`reproducibility_page`, :func:`verdict_summary`, :func:`landing_summary`:
  the pages built from the results files (never typed by hand);
- :mod:`.performance` -- the performance page and figure from
  ``results/performance.json`` (``benchmarks/perf_report.py`` calls it);
- :mod:`.sphinxext` -- a Sphinx extension (``sphinx: extra_extensions:
  [vqstudy.book]`` in ``_config.yml``, hence :func:`setup` here) that
  regenerates the toc and those pages at the start of every build and hides
  papermill's parameter cells in the rendered pages (on the text Sphinx reads:
  the committed notebooks are never modified);
- :mod:`.build` and :mod:`.commands` -- ``vqstudy reproduce`` (execute every
  chapter with papermill, regenerate the pages strictly, build the book
  strictly) and ``vqstudy book`` (pages + build);
- :mod:`.common` -- ``ROOT`` (the repository), :class:`BookError` and writing a
  generated file only when it changes.

The names below are those of the former single module ``vqstudy.book``: callers
import them from here.
"""
from .build import (STRICT_BUILD, build_book, execute_chapters, longest_first, reproduce,  # noqa: F401
                    strip_execution_metadata)
from .commands import _book, _book_args, _reproduce, _reproduce_args  # noqa: F401
from .common import ROOT, STRICT_ENV, BookError  # noqa: F401
from .markdown import fmt_number, md_code, md_escape  # noqa: F401
from .pages import (BADGES, ENVIRONMENT_LABELS, GENERATED, GENERATED_NOTE, KEY_FIGURE,  # noqa: F401
                    KEY_FIGURE_FILE, RECORDS_FILE, claims_page, claims_records, environment_table,
                    full_profile_estimate, generate_pages, key_figure_png, landing_summary,
                    reproducibility_page, verdict_counts, verdict_summary)
from .paper import CLAIM_IDS, CLAIMS, ClaimSpec  # noqa: F401
from .results import (CLAIM_LINE, FINGERPRINT_LINE, ChapterResults, check_results, fingerprint,  # noqa: F401
                      load_results)
from .sphinxext import _on_source_read, setup  # noqa: F401
from .stored import (_read_notebook, expected_results, has_outputs, notebook_title,  # noqa: F401
                     stored_parameters, stored_stdout)
from .toc import OPTIONAL_PAGES, chapter_notebooks, toc_chapters, toc_text, write_toc  # noqa: F401
