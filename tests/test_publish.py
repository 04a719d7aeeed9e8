"""The public address is set once (``repository.url`` in ``_config.yml``) and every copy agrees with it;
every chapter starts with the generated Colab install cell, which does nothing outside Colab."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from vqstudy import publish

ROOT = Path(__file__).resolve().parent.parent
CONFIG = "repository:\n  url: {url}\n  branch: main\n"


def test_every_copy_of_the_address_agrees_with_the_one_setting():
    found = publish.problems(ROOT)
    assert not found, "\n".join(found)


def test_the_one_setting_is_the_published_address():
    repo = publish.repository(ROOT)
    assert (repo.url, repo.pages) == ("https://github.com/vqstudy/vqstudy", "https://vqstudy.github.io/vqstudy/")


def test_every_chapter_starts_with_the_generated_install_cell():
    repo = publish.repository(ROOT)
    chapters = publish.chapters(ROOT)
    assert len(chapters) >= 7
    for path in chapters:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cell = publish.first_code_cell(nb)
        expected = publish.colab_install_source(repo, publish.chapter_extras(nb))
        assert "".join(cell["source"]) == expected, f"{path.name}: run `python -m vqstudy.publish`"
        assert "remove-cell" in cell["metadata"]["tags"], path.name
        assert publish.has_install_cell(nb, repo)
    extras = {p.name: publish.chapter_extras(json.loads(p.read_text(encoding="utf-8"))) for p in chapters}
    assert extras["07_vector_quantize_pytorch.ipynb"] == ["interop"]
    assert extras["02_tokens_collapse.ipynb"] == []


def _source(extras=("interop",)) -> str:
    return publish.colab_install_source(publish.parse_repository("https://github.com/vqstudy/vqstudy"), extras)


def test_install_cell_is_silent_outside_colab():
    run = subprocess.run([sys.executable, "-c", _source()], capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_install_cell_pip_installs_from_the_repository_on_colab(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: calls.append((cmd, check)))
    exec(compile(_source(), "install-cell", "exec"), {})
    assert calls == [([sys.executable, "-m", "pip", "install", "--quiet",
                       "vqstudy[interop] @ git+https://github.com/vqstudy/vqstudy@main"], True)]


def _tree(tmp_path: Path, url: str) -> Path:
    (tmp_path / "_config.yml").write_text(CONFIG.format(url=url))
    (tmp_path / "notebooks").mkdir()
    return tmp_path


def test_placeholder_in_the_setting_fails_with_what_to_set(tmp_path):
    root = _tree(tmp_path, "https://github.com/OWNER/vqstudy")
    with pytest.raises(ValueError, match=r"repository\.url in _config\.yml is still the placeholder"):
        publish.repository(root)
    assert "set it to the public repository" in publish.problems(root)[0]


@pytest.mark.parametrize("url, words", [
    ("https://gitlab.com/a/vqstudy", "must be https://github.com/<owner>/<name>"),
    ("github.com/a/vqstudy", "must be https://github.com/<owner>/<name>"),
])
def test_setting_must_be_a_github_repository(url, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        publish.parse_repository(url)


def test_stale_copies_are_reported_then_rewritten_once(tmp_path):
    root = _tree(tmp_path, "https://github.com/alice/vqstudy")
    (root / "CITATION.cff").write_text('repository-code: "https://github.com/OWNER/vqstudy"\n')
    (root / "README.md").write_text(
        "[book](https://vqstudy.github.io/vqstudy/) [binder](https://mybinder.org/v2/gh/vqstudy/vqstudy/main)\n"
        "library: https://github.com/lucidrains/vector-quantize-pytorch\n"
        "replace OWNER before publishing\n")
    found = publish.problems(root)
    assert any(f.startswith("CITATION.cff:1: 'github.com/OWNER/vqstudy' disagrees") for f in found), found
    assert any("README.md:1: 'vqstudy.github.io/vqstudy'" in f for f in found), found
    assert any("README.md:1: '/v2/gh/vqstudy/vqstudy'" in f for f in found), found
    assert any(f.startswith("README.md:3: placeholder 'OWNER' left") for f in found), found
    assert not any("lucidrains" in f for f in found)
    assert all("repository.url = https://github.com/alice/vqstudy" in f for f in found)

    changed = publish.publish(root)
    assert sorted(p.name for p in changed) == ["CITATION.cff", "README.md"]
    assert 'repository-code: "https://github.com/alice/vqstudy"' in (root / "CITATION.cff").read_text()
    readme = (root / "README.md").read_text()
    assert "https://alice.github.io/vqstudy/" in readme and "/v2/gh/alice/vqstudy/main" in readme
    assert "lucidrains/vector-quantize-pytorch" in readme
    # A bare placeholder has no address to derive: it stays reported until a person edits it.
    assert [f.split(":")[0] for f in publish.problems(root)] == ["README.md"]
    assert publish.publish(root) == []


def _without_install_cell(path: Path, out: Path) -> None:
    raw = path.read_text(encoding="utf-8")
    nb = json.loads(raw)
    nb["cells"] = [c for c in nb["cells"] if c.get("id") != publish.INSTALL_CELL_ID]
    out.write_text(publish._dump_notebook(nb, raw.endswith("\n")), encoding="utf-8")


def test_inserting_the_install_cell_changes_nothing_else(tmp_path):
    repo = publish.repository(ROOT)
    for chapter in ("02_tokens_collapse.ipynb", "07_vector_quantize_pytorch.ipynb"):
        stored = ROOT / "notebooks" / chapter
        copy = tmp_path / chapter
        _without_install_cell(stored, copy)
        assert not publish.has_install_cell(json.loads(copy.read_text(encoding="utf-8")), repo)
        assert publish.insert_install_cell(copy, repo) is True
        # outputs and layout kept: the same notebook line for line, except that the stored (executed) chapter
        # gave the cell an execution count
        assert _unexecuted(copy.read_text(encoding="utf-8")) == _unexecuted(stored.read_text(encoding="utf-8"))
        assert publish.insert_install_cell(copy, repo) is False  # idempotent
        assert _unexecuted(copy.read_text(encoding="utf-8")) == _unexecuted(stored.read_text(encoding="utf-8"))


def _unexecuted(text: str) -> list[str]:
    """The notebook's lines with the install cell's execution count blanked (it is the first code cell)."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if '"cell_type": "code"' in line)
    for i in range(first, len(lines)):
        if '"execution_count":' in lines[i]:
            lines[i] = lines[i].split(":")[0] + ": null,"
            break
    return lines


def test_a_new_address_updates_the_cell_in_place(tmp_path):
    stored = ROOT / "notebooks" / "02_tokens_collapse.ipynb"
    copy = tmp_path / stored.name
    shutil.copy(stored, copy)
    before = json.loads(copy.read_text(encoding="utf-8"))
    fork = publish.parse_repository("https://github.com/alice/vq-fork", "dev")
    assert publish.insert_install_cell(copy, fork) is True
    after = json.loads(copy.read_text(encoding="utf-8"))
    assert "git+https://github.com/alice/vq-fork@dev" in "".join(publish.first_code_cell(after)["source"])
    assert len(after["cells"]) == len(before["cells"])
    changed = [i for i, (a, b) in enumerate(zip(before["cells"], after["cells"])) if a != b]
    assert [before["cells"][i]["id"] for i in changed] == [publish.INSTALL_CELL_ID]


def test_a_notebook_in_another_layout_is_refused(tmp_path):
    stored = ROOT / "notebooks" / "02_tokens_collapse.ipynb"
    copy = tmp_path / stored.name
    copy.write_text(json.dumps(json.loads(stored.read_text(encoding="utf-8")), indent=2), encoding="utf-8")
    with pytest.raises(ValueError, match="not in nbformat's layout"):
        publish.insert_install_cell(copy, publish.repository(ROOT))


def test_check_command_exits_nonzero_on_a_disagreement(tmp_path, capsys):
    root = _tree(tmp_path, "https://github.com/alice/vqstudy")
    (root / "CITATION.cff").write_text('repository-code: "https://github.com/bob/vqstudy"\n')
    assert publish.main(["--check", "--root", str(root)]) == 1
    assert "CITATION.cff:1" in capsys.readouterr().out
    assert publish.main(["--root", str(root)]) == 0
    assert publish.main(["--check", "--root", str(root)]) == 0
