"""The book's generated pages: claims table, staleness checks, toc (all in temporary folders)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import math

import numpy as np
import pytest

from vqstudy import book
from vqstudy.claims import primary_tests
from vqstudy.notebook import Claims


def _notebook(path: Path, chapter: str, claims: Claims | None, profile: str = "quick",
              injected: str | None = None, executed: bool = True) -> Path:
    """A minimal chapter notebook whose stored outputs are what Claims.report() printed."""
    lines = []
    if claims is not None:
        for v in claims.verdicts:
            lines += [f"{v.claim}: {v.verdict.upper()} - {v.statement}\n", f"    evidence: {v.evidence}\n"]
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": [f"# Chapter {chapter}\n"]},
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": 1, "outputs": [],
         "source": [f'profile = "{profile}"\n', "seeds = [0, 1, 2]\n"]},
    ]
    if injected is not None:
        cells.append({"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "execution_count": 2,
                      "outputs": [], "source": [injected]})
    cells.append({"cell_type": "code", "metadata": {}, "execution_count": 3,
                  "source": [f'claims = nbk.Claims("{chapter}")\n', "claims.report()\n"],
                  "outputs": [{"output_type": "stream", "name": "stdout", "text": lines}] if executed else []})
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"},
                                       "papermill": {"duration": 12.5}},
          "nbformat": 4, "nbformat_minor": 5}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path


def _values(claim: str, verdict: str) -> dict:
    """Primary-test values over ten seeds that give ``verdict``: a clear effect, a reversed one, or noise."""
    rng = np.random.default_rng(0)
    out = {}
    for test in primary_tests(claim):
        bound = math.log(test.threshold) if test.scale == "ratio" else test.threshold
        toward = -1.0 if test.side == "below" else 1.0
        shift = {"reproduced": toward, "not reproduced": -toward, "inconclusive": 0.0}[verdict]
        noise = 3.0 if verdict == "inconclusive" else 0.05
        effects = bound + shift + rng.normal(0, noise, 10)
        control = {s: 10.0 for s in range(10)}
        back = np.exp if test.scale == "ratio" else (lambda e: e)
        treatment = {s: float(10.0 * back(e)) if test.scale == "ratio" else 10.0 + float(e)
                     for s, e in enumerate(effects)}
        out[test.key] = (treatment, control)
    return out


def _claims(chapter: str, spec: dict[str, str]) -> Claims:
    claims = Claims(chapter)
    for cid, verdict in spec.items():
        claims.judge(cid, _values(cid, verdict), f"measured {cid}: 1.5 vs 3.25", {"x": 1.5},
                     statement=f"statement of {cid}")
    return claims


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fake project: two chapters with results, one verdict of each kind."""
    (tmp_path / "book").mkdir()
    a = _claims("02_alpha", {"C1": "reproduced", "C2": "inconclusive"})
    _notebook(tmp_path / "notebooks" / "02_alpha.ipynb", "02_alpha", a)
    a.write({"profile": "quick", "seeds": [0, 1, 2]}, {"full_profile_work_ratio": 10},
            directory=tmp_path / "results")
    b = _claims("04_beta", {"C8": "not reproduced"})
    b.not_testable("C7", "statement of C7", "needs ImageNet")
    _notebook(tmp_path / "notebooks" / "04_beta.ipynb", "04_beta", b)
    b.write({"profile": "quick", "seeds": [0, 1]}, directory=tmp_path / "results")
    book.write_toc(tmp_path)
    return tmp_path


def _rows(page: str) -> list[str]:
    return [line for line in page.splitlines() if line.startswith("| **C")]


def test_claims_table_one_row_per_claim_with_copied_verdicts(project: Path):
    chapters = book.load_results(project, strict=True)
    page = book.claims_page(chapters)
    rows = _rows(page)
    assert [r.split("|")[1].strip() for r in rows] == [f"**C{i}**" for i in range(1, 10)]
    by_id = {r.split("|")[1].strip().strip("*"): r for r in rows}
    assert "{bdg-success}`reproduced`" in by_id["C1"]
    # the chapter is named beside each badge
    assert "{bdg-success}`reproduced` {doc}`Ch.\u00a01 </notebooks/02_alpha>`" in by_id["C1"]
    assert "{bdg-danger}`not reproduced` {doc}`Ch.\u00a02 </notebooks/04_beta>`" in by_id["C8"]
    # the measured numbers are in one paragraph per claim below the table, not in the table
    assert "measured C1: 1.5 vs 3.25" not in by_id["C1"]
    section = page.split("(claim-c1)=")[1].split("(claim-c2)=")[0]
    assert "measured C1: 1.5 vs 3.25" in section and "{bdg-success}`reproduced`" in section
    assert "{bdg-warning}`inconclusive`" in by_id["C2"]
    assert "{bdg-danger}`not reproduced`" in by_id["C8"]
    assert "{bdg-secondary}`not testable here`" in by_id["C7"]
    assert "</notebooks/02_alpha>" in by_id["C1"] and "</notebooks/04_beta>" in by_id["C8"]
    # untested claims say so and name the chapter meant to test them
    assert "not yet tested" in by_id["C3"] and "03 embeddings collapse" in by_id["C3"]
    assert "not yet tested" in by_id["C5"] and "09 real images" in by_id["C5"]
    # the paper's side is there too
    assert "5,312" in by_id["C6"]


def test_generate_pages_writes_claims_and_reproducibility(project: Path):
    changed = book.generate_pages(project, strict=True)
    assert {p.name for p in changed} == {"claims.md", "reproducibility.md", "verdicts.md", "landing.md",
                                         "claims-records.json"}        # no key figure: its notebook is absent
    repro = (project / "book" / "reproducibility.md").read_text()
    assert r"seeds = \[0, 1, 2\]" in repro and "Notebook" not in repro    # seeds; no per-execution duration
    assert "≈" in repro                                                  # 02_alpha declares its work ratio
    assert "not recorded" in repro                                       # 04_beta does not
    assert "bash reproduce.sh" in repro and "vqstudy reproduce" not in repro
    records = json.loads((project / "book" / "_generated" / "claims-records.json").read_text())
    assert records["C1"]["ours"][0]["numbers"] == {"x": 1.5} and records["C3"]["ours"] == []
    assert "claims-records.json" in (project / "book" / "claims.md").read_text()   # the page links the download
    assert book.generate_pages(project, strict=True) == []               # idempotent: nothing rewritten


def test_landing_summary_counts_verdicts_and_lists_every_claim(project: Path):
    chapters = book.load_results(project, strict=True)
    assert book.verdict_counts(chapters) == {"reproduced": 1, "inconclusive": 1, "not reproduced": 1,
                                             "not testable here": 1}
    text = book.landing_summary(chapters, "_generated/key-figure.png")
    assert "4 of the paper's 9 claims were checked, 4 times in 2 chapters" in text
    claim_lines = [line for line in text.splitlines() if line.startswith("- **C")]
    assert [line.split("**")[1] for line in claim_lines] == [f"C{i}" for i in range(1, 10)]
    assert "{bdg-warning}`inconclusive` {doc}`Ch.\u00a01 </notebooks/02_alpha>`" in text
    assert ":::{figure} _generated/key-figure.png" in text
    assert ":::{figure}" not in book.landing_summary(chapters, None)


def test_environment_facts_shown_when_recorded_and_skipped_when_absent(project: Path):
    chapters = book.load_results(project, strict=True)
    for ch in chapters:  # records written before these facts were recorded
        for key in ("cpu_model", "cpu_features", "cores", "memory_gb", "cpu_capability", "threads",
                    "reproducible_numerics"):
            ch.record["environment"].pop(key, None)
    chapters[0].record["environment"].update({"cpu_model": "Example CPU @ 2.0GHz", "cores": 2, "memory_gb": 7.7,
                                              "reproducible_numerics": True})
    chapters[1].record["environment"]["cpu_model"] = "Other CPU"
    rows = book.environment_table(chapters)
    by_item = {r.split("|")[1].strip(): r.split("|")[2].strip() for r in rows[2:]}
    assert by_item["CPU"] == "Example CPU @ 2.0GHz (ch. 1); Other CPU (ch. 2)"
    assert by_item["CPU cores"] == "2" and by_item["Memory (GB)"] == "7.7"
    assert by_item["Reproducible-numerics mode (pinned kernels)"] == "yes" and by_item["PyTorch"].startswith("2.")
    assert "CPU instruction set used by PyTorch" not in by_item               # no chapter recorded it
    assert book.environment_table([]) == ["No chapter has written a results file yet."]


def test_missing_results_file_is_an_error_in_strict_mode(project: Path):
    (project / "results" / "04_beta.json").unlink()
    with pytest.raises(book.BookError, match=r"04_beta\.json"):
        book.load_results(project, strict=True)
    # non-strict: the chapter's claims show as not yet tested, and the page says why
    page = book.claims_page(book.load_results(project, strict=False))
    row = next(r for r in _rows(page) if r.startswith("| **C8**"))
    assert "not yet tested" in row


def _edit_claim(project: Path, chapter: str, index: int, **changes) -> None:
    path = project / "results" / f"{chapter}.json"
    record = json.loads(path.read_text())
    record["claims"][index].update(changes)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("changes, message", [
    ({"verdict": "not reproduced"}, r"02_alpha\.json is stale"),
    ({"evidence": "measured C2: 1.6 vs 3.25"}, "evidence"),
    ({"statement": "another statement"}, "is not what the notebook printed"),
])
def test_results_not_written_by_the_stored_run_are_stale(project: Path, changes, message):
    _edit_claim(project, "02_alpha", 1, **changes)
    with pytest.raises(book.BookError, match=message):
        book.load_results(project)


def test_other_profile_is_stale(project: Path):
    nb = project / "notebooks" / "02_alpha.ipynb"
    a = _claims("02_alpha", {"C1": "reproduced", "C2": "inconclusive"})
    _notebook(nb, "02_alpha", a, injected='profile = "full"\n')      # stored run: papermill -p profile full
    with pytest.raises(book.BookError, match="profile='full'"):
        book.load_results(project)


def test_unexecuted_notebook_is_stale(project: Path):
    _notebook(project / "notebooks" / "02_alpha.ipynb", "02_alpha", None, executed=False)
    with pytest.raises(book.BookError, match="no stored outputs"):
        book.load_results(project)


def test_fingerprint_printed_by_the_notebook_is_checked(project: Path):
    nb_path = project / "notebooks" / "02_alpha.ipynb"
    nb = json.loads(nb_path.read_text())
    nb["cells"][-1]["outputs"][0]["text"].append("results fingerprint: 0123456789abcdef\n")
    nb_path.write_text(json.dumps(nb))
    with pytest.raises(book.BookError, match="fingerprint"):
        book.load_results(project)
    record = json.loads((project / "results" / "02_alpha.json").read_text())
    nb["cells"][-1]["outputs"][0]["text"][-1] = f"results fingerprint: {book.fingerprint(record)}\n"
    nb_path.write_text(json.dumps(nb))
    assert len(book.load_results(project)) == 2


def test_a_malformed_results_file_is_a_book_error(project: Path):
    """The file's own checks are vqstudy.results' (tests/test_results.py); the book reports them as its errors."""
    _edit_claim(project, "04_beta", 0, verdict="sort of")
    with pytest.raises(book.BookError, match=r"04_beta\.json: claim C8 has an invalid verdict"):
        book.load_results(project)
    (project / "results" / "04_beta.json").write_text("{")
    with pytest.raises(book.BookError, match=r"04_beta\.json is not valid JSON"):
        book.load_results(project)


def test_toc_lists_exactly_the_notebooks_present(project: Path):
    assert [p.name for p in book.toc_chapters(project)] == ["02_alpha.ipynb", "04_beta.ipynb"]
    _notebook(project / "notebooks" / "03_gamma.ipynb", "03_gamma", None, executed=False)
    assert book.write_toc(project) is True
    assert [p.name for p in book.toc_chapters(project)] == ["02_alpha.ipynb", "03_gamma.ipynb", "04_beta.ipynb"]
    assert book.write_toc(project) is False
    toc = (project / "_toc.yml").read_text()
    assert "book/performance" not in toc
    (project / "book" / "performance.md").write_text("# Performance\n")
    book.write_toc(project)
    assert "file: book/performance" in (project / "_toc.yml").read_text()
    (project / "notebooks" / "03_gamma.ipynb").unlink()
    with pytest.raises(book.BookError, match="03_gamma"):
        book.toc_chapters(project)


def test_chapter_without_claims_needs_no_results(project: Path):
    nb = project / "notebooks" / "07_interop.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": "# Interop\n"}],
                              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    book.write_toc(project)
    chapters = book.load_results(project, strict=True)
    assert chapters[-1].chapter is None
    assert "records no claims" in book.reproducibility_page(chapters, project)


def test_chapter_that_records_numbers_but_no_claim(project: Path):
    """A chapter that illustrates without judging (chapter 5) writes a results file with no claims: it loads
    strictly, shows its run on the reproducibility page, and adds nothing to the claims."""
    before = book.load_results(project, strict=True)
    quiet = Claims("05_gamma")
    _notebook(project / "notebooks" / "05_gamma.ipynb", "05_gamma", quiet)
    quiet.write({"profile": "quick", "seeds": [0, 1, 2]}, {"ratio": 0.5}, directory=project / "results")
    book.write_toc(project)
    chapters = book.load_results(project, strict=True)
    gamma = chapters[-1]
    assert gamma.chapter == "05_gamma" and gamma.record["claims"] == [] and gamma.record["numbers"] == {"ratio": 0.5}
    assert book.verdict_counts(chapters) == book.verdict_counts(before)
    assert "05_gamma" not in book.claims_page(chapters)
    row = next(line for line in book.reproducibility_page(chapters, project).splitlines() if "05\\_gamma" in line)
    assert r"seeds = \[0, 1, 2\]" in row and "records no claims" not in row
    path = project / "results" / "05_gamma.json"          # a claim the notebook never printed is stale
    record = json.loads(path.read_text())
    record["claims"] = json.loads((project / "results" / "04_beta.json").read_text())["claims"][:1]
    path.write_text(json.dumps(record))
    with pytest.raises(book.BookError, match="05_gamma.json is stale"):
        book.load_results(project)


def test_chapter_recording_numbers_only_joins_the_book_without_verdicts(project: Path):
    """A chapter of findings (no registry claim) writes a results file of numbers only: the book checks it
    like any other, lists its run on the reproducibility page and counts no verdict for it."""
    nb = project / "notebooks" / "08_which_fix.ipynb"
    findings = Claims("08_which_fix")
    _notebook(nb, "08_which_fix", findings)
    book.write_toc(project)
    with pytest.raises(book.BookError, match="08_which_fix.json"):
        book.load_results(project, strict=True)                      # the main job still needs its file
    findings.write({"profile": "quick", "seeds": list(range(10))}, {"leaderboard": {"EMA": {"perplexity": 17.2}},
                                                                     "full_profile_work_ratio": 8},
                   directory=project / "results")
    chapters = book.load_results(project, strict=True)
    assert chapters[-1].chapter == "08_which_fix" and chapters[-1].record["claims"] == []
    repro = book.reproducibility_page(chapters, project)
    row = next(line for line in repro.splitlines() if "08_which_fix>" in line)
    assert "seeds = \\[0, 1, 2" in row and "≈" in row                 # its seeds and full-profile estimate
    assert book.verdict_counts(chapters) == book.verdict_counts(chapters[:-1])
    assert "08_which_fix" not in book.claims_page(chapters)
    _notebook(nb, "08_which_fix", None, executed=False)              # stale: the stored run was cleared
    with pytest.raises(book.BookError, match="no stored outputs"):
        book.load_results(project)


def test_papermill_cells_are_hidden_without_touching_the_file(project: Path):
    path = project / "notebooks" / "02_alpha.ipynb"
    a = _claims("02_alpha", {"C1": "reproduced", "C2": "inconclusive"})
    _notebook(path, "02_alpha", a, injected='profile = "quick"\n')
    before = path.read_text()
    source = [before]
    book._on_source_read(None, "notebooks/02_alpha", source)
    tags = [c["metadata"].get("tags", []) for c in json.loads(source[0])["cells"]]
    assert ["parameters", "hide-cell"] in tags and ["injected-parameters", "hide-cell"] in tags
    assert path.read_text() == before
    again = [source[0]]
    book._on_source_read(None, "notebooks/02_alpha", again)
    assert again[0] == source[0]                                          # idempotent


def test_markdown_escaping_keeps_cells_intact():
    text = book.md_escape("a | b *c* $x$ <d> [e](f) R^2\nnext")
    assert "\n" not in text and "\\|" in text and "\\$" in text and "\\*" in text and "\\<" in text


def test_cli_registers_subcommands():
    from vqstudy import cli

    assert {"reproduce", "book"} <= set(cli.SUBCOMMANDS)
    args = cli.build_parser().parse_args(["reproduce", "--profile", "full", "--skip-execute"])
    assert args.profile == "full" and args.skip_execute
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["reproduce", "--profile", "huge"])


def test_execute_chapters_is_idempotent_and_writes_fresh_results(tmp_path: Path):
    """papermill in place, twice: one injected-parameters cell, and results that match the stored run."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "quick"\nseeds = [0, 1, 2]')
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "from pathlib import Path\nfrom vqstudy import notebook as nbk\n"
        'claims = nbk.Claims("02_tiny")\n'
        'claims.not_testable("C1", "tiny statement", f"profile was {profile}")\n'
        "claims.report()\n"
        'claims.write({"profile": profile, "seeds": seeds}, directory=Path("..") / "results")')
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny chapter"), params, body]
    path = tmp_path / "notebooks" / "02_tiny.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)

    book.execute_chapters([path], "full", root=tmp_path)
    first = path.read_text()
    book.execute_chapters([path], "full", root=tmp_path)
    assert path.read_text() == first                                      # a rerun rewrites it byte for byte
    cells = json.loads(path.read_text())["cells"]
    assert sum("injected-parameters" in c["metadata"].get("tags", []) for c in cells) == 1
    chapter = book.check_results(path, tmp_path / "results")
    assert chapter.record["parameters"]["profile"] == "full"
    assert chapter.record["claims"][0]["evidence"] == "profile was full"
    assert not list(tmp_path.glob("notebooks/.*.ipynb"))
                 # no temporary copies left


def test_failing_chapter_stops_with_its_name_and_leaves_the_notebook(tmp_path: Path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell('raise ValueError("boom")')]
    path = tmp_path / "notebooks" / "03_broken.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    before = path.read_text()
    with pytest.raises(book.BookError, match=r"03_broken\.ipynb failed"):
        book.execute_chapters([path], "quick", root=tmp_path)
    assert path.read_text() == before
    assert (tmp_path / "_build" / "failed" / "03_broken.ipynb").is_file()


def _kernel_notebook(path: Path, parameters: str, *cells: tuple[str, list[str]]) -> Path:
    """A notebook for the python3 kernel: a parameters cell, then (source, tags) code cells."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": tags})
                for source, tags in ((parameters, ["parameters"]), *cells)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _store_reporting_notebook(path: Path, body: str = "") -> Path:
    """A chapter that writes the run store its kernel was given to ``<name>.store`` beside notebooks/."""
    return _kernel_notebook(path, 'profile = "quick"', (
        "import os\nfrom pathlib import Path\n"
        f'Path("..", "{path.stem}.store").write_text(os.environ.get("VQSTUDY_RUN_STORE", ""))\n{body}', []))


def test_chapters_run_two_at_a_time_and_share_one_run_store_that_is_removed(tmp_path: Path, monkeypatch):
    from vqstudy.sweep import RUN_STORE_ENV

    monkeypatch.delenv(RUN_STORE_ENV, raising=False)
    paths = [_store_reporting_notebook(tmp_path / "notebooks" / f"0{i}_part.ipynb") for i in (1, 2, 3)]
    seconds = book.execute_chapters(paths, "quick", root=tmp_path, jobs=2)
    stores = {(tmp_path / f"{p.stem}.store").read_text() for p in paths}
    assert len(stores) == 1 and next(iter(stores))                    # every kernel saw the same store
    assert not Path(next(iter(stores))).exists() and RUN_STORE_ENV not in os.environ   # removed afterwards
    assert all(json.loads(p.read_text())["cells"][-1]["execution_count"] for p in paths)
    assert seconds > 0
    monkeypatch.setenv(RUN_STORE_ENV, str(tmp_path / "mine"))          # a store the caller owns is kept
    book.execute_chapters(paths[:1], "quick", root=tmp_path)
    assert (tmp_path / f"{paths[0].stem}.store").read_text() == str(tmp_path / "mine")


def test_a_failing_chapter_among_concurrent_ones_is_named_and_the_others_finish(tmp_path: Path):
    broken = _store_reporting_notebook(tmp_path / "notebooks" / "01_broken.ipynb", 'raise ValueError("boom")')
    fine = _store_reporting_notebook(tmp_path / "notebooks" / "02_fine.ipynb", "import time\ntime.sleep(2)")
    before = broken.read_text()
    with pytest.raises(book.BookError, match=r"01_broken\.ipynb failed .*boom"):
        book.execute_chapters([broken, fine], "quick", root=tmp_path, jobs=2)
    assert broken.read_text() == before and (tmp_path / "_build" / "failed" / broken.name).is_file()
    assert json.loads(fine.read_text())["cells"][-1]["execution_count"]   # the running one finished
    assert not list(tmp_path.glob("notebooks/.*.ipynb"))


def test_one_chapter_runs_per_two_cores_by_default(monkeypatch):
    from vqstudy.book.build import default_chapters_at_a_time

    for cores, expected in ((None, 1), (1, 1), (2, 1), (3, 1), (4, 2), (16, 8)):
        monkeypatch.setattr(os, "cpu_count", lambda cores=cores: cores)
        assert default_chapters_at_a_time() == expected


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True, "2"])
def test_chapters_at_a_time_must_be_a_positive_integer(tmp_path: Path, jobs):
    with pytest.raises(ValueError, match="chapters at a time must be an integer >= 1"):
        book.execute_chapters([], "quick", root=tmp_path, jobs=jobs)
    with pytest.raises(ValueError, match=r"invalid jobs="):
        book.reproduce("quick", skip_execute=True, root=tmp_path, jobs=jobs)


def test_the_longest_stored_chapter_runs_first_and_a_new_one_before_all(tmp_path: Path):
    (tmp_path / "results").mkdir()
    for stem, wall in (("01_a", 50.0), ("02_b", 240.0), ("03_c", 120.0)):
        (tmp_path / "results" / f"{stem}.json").write_text(json.dumps({"wall_time_s": wall}))
    chapters = [tmp_path / "notebooks" / f"{s}.ipynb" for s in ("01_a", "02_b", "03_c", "04_new")]
    assert [p.stem for p in book.longest_first(chapters, tmp_path)] == ["04_new", "02_b", "03_c", "01_a"]


def test_the_main_jobs_time_is_recorded_with_the_numbers_it_produced_and_shown(tmp_path: Path):
    from vqstudy.book.build import record_main_job
    from vqstudy.book.pages import main_job_row

    chapters = [tmp_path / "notebooks" / "01_a.ipynb", tmp_path / "notebooks" / "02_b.ipynb"]
    path = tmp_path / "results" / "main_job.json"
    assert main_job_row(path) == []                                       # no record: no row
    assert record_main_job(tmp_path, "quick", 2, chapters, 600.0, renewed=False)   # none yet: written
    first = path.read_text()
    assert json.loads(first)["wall_time_s"] == 600.0 and json.loads(first)["chapters"] == ["01_a", "02_b"]
    assert not record_main_job(tmp_path, "quick", 2, chapters, 700.0, renewed=False)   # same numbers: kept
    assert path.read_text() == first
    assert not record_main_job(tmp_path, "quick", 1, chapters, 700.0, renewed=False)   # how many at a time: a fact
    assert record_main_job(tmp_path, "full", 2, chapters, 900.0, renewed=False)     # another profile
    assert record_main_job(tmp_path, "full", 2, chapters[:1], 900.0, renewed=False)   # other chapters
    assert record_main_job(tmp_path, "full", 1, chapters[:1], 800.0, renewed=True)    # a chapter's numbers changed
    assert json.loads(path.read_text())["wall_time_s"] == 800.0
    assert main_job_row(path) == ["| **Main job**: 1 chapter, 1 at a time, full profile | | **13.3 min** | |"]
    path.write_text("{not json")
    assert main_job_row(path) == []


def test_a_rerun_that_changes_only_measured_outputs_leaves_the_notebook_as_it_was(tmp_path: Path):
    """Measured speeds differ at every run, the numbers do not: cells tagged nbval-ignore-output, and wall
    times in any cell, which nbval's sanitizing patterns replace (chapter 8 prints both)."""
    path = _kernel_notebook(tmp_path / "notebooks" / "01_timed.ipynb", 'profile = "quick"\nvalue = 1',
                            ("import time\nprint(time.perf_counter_ns())", ["nbval-ignore-output"]),
                            ('print(f"trained in {time.perf_counter_ns() % 10**6 / 7:.1f} s wall")', []),
                            ("print(value)", []))
    book.execute_chapters([path], "quick", root=tmp_path)
    first = path.read_text()
    book.execute_chapters([path], "quick", root=tmp_path)
    assert path.read_text() == first                                      # only the timing differed: kept
    nb = json.loads(first)
    nb["cells"][0]["source"] = 'profile = "quick"\nvalue = 2'
    path.write_text(json.dumps(nb))
    book.execute_chapters([path], "quick", root=tmp_path)
    outputs = json.loads(path.read_text())["cells"]
    assert "".join(outputs[-1]["outputs"][0]["text"]) == "2\n"            # a number changed: rewritten
    assert not list(tmp_path.glob("notebooks/.*.ipynb"))

def test_nbval_sanitizes_with_the_patterns_the_main_job_compares_with():
    """The main job keeps a notebook when its rerun differs only where nbval does not compare; both must
    use the same patterns, so the file pytest passes to nbval is the package's."""
    from vqstudy.book.build import nbval_sanitize_config
    from vqstudy.book.common import ROOT

    assert (ROOT / "tests" / "nbval_sanitize.cfg").read_text() == nbval_sanitize_config()
    assert "--nbval-sanitize-with tests/nbval_sanitize.cfg" in (ROOT / "pyproject.toml").read_text()
