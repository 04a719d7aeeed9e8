import argparse
import json

import pytest

from vqstudy.cli import main


def test_config_prints_valid_json(capsys):
    assert main(["config", "--set", "train.steps=7"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["train"]["steps"] == 7


def test_train_writes_result(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["train", "--set", "train.steps=20", "--set", "data.n_per_cluster=50",
                 "--set", "quantizer.codebook_size=8", "--out", str(out)])
    assert code == 0
    record = json.loads(out.read_text())
    assert record["status"] == "ok" and record["config"]["train"]["steps"] == 20
    assert "perplexity" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["train", "--set", "train.steps=0"], ["train.steps"]),
    (["train", "--set", "quantizer.init=zeros"], ["quantizer.init", "allowed values"]),
    (["train", "--set", "steps=5"], ["section.field=value"]),
    (["train", "missing.json"], ["config file not found"]),
    (["train", "--set", "nosuch.x=1"], ["nosuch"]),
])
def test_bad_arguments_fail_clearly_and_write_nothing(tmp_path, capsys, argv, words):
    out = tmp_path / "r.json"
    assert main(argv + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_invalid_config_json_is_one_line_naming_the_file(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text('{"train": {steps: 3}}')
    assert main(["train", str(config)]) == 2
    assert capsys.readouterr().err == (f"vqstudy train: error: config file {config} is not valid JSON: "
                                       "line 1, column 12: Expecting property name enclosed in double quotes\n")


@pytest.mark.parametrize("argv", [["demo", "--steps", "0"], ["demo", "--seeds", "-1"], ["nope"]])
def test_argparse_rejects(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_bare_vqstudy_prints_help_and_exits_0(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: vqstudy") and all(name in out for name in ("demo", "train", "config", "sweep"))


def test_version(capsys):
    import vqstudy

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"vqstudy {vqstudy.__version__}"


def test_every_subcommand_has_a_description_and_an_example():
    from vqstudy.cli import SUBCOMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(SUBCOMMANDS) and {"demo", "train", "config", "sweep", "book"} <= set(sub.choices)
    for name, sp in sub.choices.items():
        assert sp.description and "\n" not in sp.description.strip(), name
        lines = (sp.epilog or "").splitlines()
        assert lines[:1] == ["example:"] and lines[1].strip().startswith("vqstudy "), name
        assert f" {name}" in sp.epilog, name
        assert "example:" in sp.format_help(), name


def test_realimages_refuses_a_root_that_is_not_the_repository_and_writes_nothing(tmp_path, capsys):
    assert main(["realimages", "--root", str(tmp_path)]) == 2
    assert "--root" in capsys.readouterr().err and list(tmp_path.iterdir()) == []
