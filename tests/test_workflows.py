"""The GitHub Actions workflows cannot run here: they are linted with actionlint, and they must run the
README's own two commands, so that what CI runs here is what the workflows run there. Binder's
configuration is checked against the same pins."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
SETUP_ACTION = ROOT / ".github" / "actions" / "setup" / "action.yml"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _actionlint() -> str:
    """The actionlint binary of this environment (requirements.txt installs it); a failure in CI, else a skip."""
    found = shutil.which("actionlint", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                                os.environ.get("PATH", "")]))
    if found:
        return found
    message = "actionlint is not installed (pip install -r requirements.txt)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"workflow lint cannot run in CI: {message}")
    pytest.skip(message)


def test_actionlint_passes_on_the_workflows():
    files = sorted(str(p.relative_to(ROOT)) for p in WORKFLOWS.glob("*.yml"))
    assert {"tests.yml", "book.yml", "links.yml"} <= {Path(f).name for f in files}
    run = subprocess.run([_actionlint(), "-color=false", *files], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "bad.yml").write_text(
        "on: push\njobs:\n  t:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.no_such_context_value_x }}\n"
        "      - uses: actions/checkout@v5\n        with:\n          no-such-input: 1\n")
    run = subprocess.run([_actionlint(), "-color=false", ".github/workflows/bad.yml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "no-such-input" in run.stdout, run.stdout + run.stderr


def readme_commands() -> list[str]:
    """The commands of the README's "Two commands" block, comments removed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^## Two commands\s*```bash\n(.*?)```", text, re.S | re.M)
    assert block, "README.md has no '## Two commands' bash block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.split("#", 1)[0].strip()]


def _load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in doc:  # YAML 1.1 reads the key `on` as true
        doc["on"] = doc.pop(True)
    return doc


def _steps(doc: dict) -> list[dict]:
    if "runs" in doc:
        return doc["runs"]["steps"]
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def _run_lines(doc: dict) -> list[str]:
    return [line.strip() for step in _steps(doc) for line in step.get("run", "").splitlines() if line.strip()]


def test_the_readme_has_two_commands():
    assert readme_commands() == ["bash reproduce.sh", "bash reproduce.sh test"]


@pytest.mark.parametrize("workflow, command", [("tests.yml", "bash reproduce.sh test"),
                                               ("book.yml", "bash reproduce.sh"),
                                               ("links.yml", "bash reproduce.sh")])
def test_workflows_run_the_readme_commands(workflow, command):
    lines = _run_lines(_load(WORKFLOWS / workflow))
    assert command in readme_commands()
    assert command in lines, f"{workflow} must run `{command}`"
    for line in lines:
        if "reproduce.sh" in line:
            assert line in readme_commands(), f"{workflow} runs `{line}`, which is not one of the README's commands"


def test_every_workflow_and_the_local_ci_use_only_readme_commands():
    commands = readme_commands()
    paths = sorted(WORKFLOWS.glob("*.yml")) + [SETUP_ACTION]
    for path in paths:
        for line in _run_lines(_load(path)):
            assert "reproduce.sh" not in line or line in commands, f"{path.name}: {line}"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if "reproduce.sh" in line
          and not line.lstrip().startswith("#")]
    assert ci == ["bash reproduce.sh test"]


def test_triggers_and_deployment():
    tests, book, links = (_load(WORKFLOWS / f"{name}.yml") for name in ("tests", "book", "links"))
    assert {"push", "pull_request"} <= set(tests["on"])
    assert book["on"]["push"]["branches"] == ["main"] and "pull_request" in book["on"]
    steps = {s.get("uses", "").split("@")[0]: s for s in _steps(book)}
    assert "if" not in steps["actions/upload-artifact"]                       # the HTML on every run
    assert steps["actions/upload-artifact"]["with"]["path"].rstrip("/") == "_build/html"
    assert "refs/heads/main" in steps["actions/upload-pages-artifact"]["if"]
    deploy = book["jobs"]["deploy"]
    assert "refs/heads/main" in deploy["if"] and deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert links["on"]["schedule"][0]["cron"]
    assert any(s.get("uses", "").startswith("lycheeverse/lychee-action@") for s in _steps(links))


def test_every_job_that_runs_reproduce_sets_up_cpu_torch_first():
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for name, job in _load(path)["jobs"].items():
            steps = job.get("steps", [])
            runs = [i for i, s in enumerate(steps) if "reproduce.sh" in s.get("run", "")]
            setup = [i for i, s in enumerate(steps) if s.get("uses") == "./.github/actions/setup"]
            if runs:
                assert setup and setup[0] < runs[0], f"{path.name}:{name} runs reproduce.sh before the set-up"
    action = _load(SETUP_ACTION)
    python = [s for s in _steps(action) if s.get("uses", "").startswith("actions/setup-python@")][0]["with"]
    assert python["python-version"] == "3.11" and python["cache"] == "pip"
    script = "\n".join(_run_lines(action))
    assert f"--index-url {CPU_INDEX}" in script and "grep -E '^torch==' requirements.txt" in script
    assert "python -m venv .venv" in script


def test_requirements_pin_torch_once():
    pins = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("torch")]
    assert len(pins) == 1 and re.fullmatch(r"torch==[0-9.]+", pins[0]), pins


def test_binder_uses_the_pins_with_cpu_torch_and_installs_the_package():
    lines = [line.strip() for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert f"--extra-index-url {CPU_INDEX}" in lines
    nested = [line.split(None, 1)[1] for line in lines if line.startswith("-r ")]
    assert [(ROOT / "binder" / n).resolve() for n in nested] == [(ROOT / "requirements.txt").resolve()]
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    python = _load(SETUP_ACTION)["runs"]["steps"][0]["with"]["python-version"]
    assert runtime == f"python-{python}"
    post = ROOT / "binder" / "postBuild"
    assert os.access(post, os.X_OK) and "pip install --no-cache-dir --no-deps -e ." in post.read_text()


def test_local_actions_exist():
    """actionlint does not check that a local action (``uses: ./...``) exists; this does."""
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for step in _steps(_load(path)):
            if step.get("uses", "").startswith("./"):
                assert (ROOT / step["uses"] / "action.yml").is_file(), f"{path.name}: {step['uses']}"
