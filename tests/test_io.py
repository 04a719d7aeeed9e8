"""File I/O: atomic writes, one-line JSON/YAML errors, stale temporary files and exclusive claims."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vqstudy import io


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "r.json"
    io.write_atomic(path, "one")
    io.write_atomic(path, "two")
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_invalid_json_is_one_line_naming_file_line_and_column(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"train": {steps: 3}}')
    with pytest.raises(ValueError) as info:
        io.read_json(path, "config file")
    assert str(info.value) == (f"config file {path} is not valid JSON: line 1, column 12: "
                               "Expecting property name enclosed in double quotes")


def test_bytes_that_are_not_utf8_name_the_file(tmp_path):
    path = tmp_path / "r.json"
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(io.FileFormatError) as info:
        io.read_json(path, "sweep record")
    assert str(info.value) == f"sweep record {path} is not valid UTF-8 text: byte 0xff at position 7 cannot be decoded"
    assert info.value.kind == "UTF-8 text"


@pytest.mark.parametrize("text, where", [
    ("base:\n  data: {n_per_cluster: 100\naxes:\n  train.seed: [0]\n",
     "line 3, column 5: expected ',' or '}', but got ':' (while parsing a flow mapping at line 2, column 9)"),
    ("a: [1, 2\n", "line 2, column 1: expected ',' or ']', but got '<stream end>'"),
    ("a: b\n c: d\n", "line 2, column 3: mapping values are not allowed here"),
    ("a: \x00\n", "line 1, column 4: special characters are not allowed (character #x0000)"),
])
def test_malformed_yaml_is_one_line_naming_file_line_and_problem(tmp_path, text, where):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        io.read_yaml(path, "grid file")
    message = str(info.value)
    assert "\n" not in message and "<unicode string>" not in message
    assert message.startswith(f"grid file {path} is not valid YAML: {where}")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="grid file not found: .*nope.yaml"):
        io.read_yaml(tmp_path / "nope.yaml", "grid file")


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_temporary_files_go_and_fresh_ones_stay(tmp_path):
    stale = tmp_path / ".abc.json.k2j4h5g6.tmp"     # a write killed two hours ago
    fresh = tmp_path / ".abc.json.q1w2e3r4.tmp"     # a concurrent writer's, just made
    other = tmp_path / ".notes.tmp"                  # not named like write_atomic's
    for path in (stale, fresh, other):
        path.write_text("x")
    _age(stale, 2 * 3600)
    _age(other, 2 * 3600)
    assert io.remove_stale_temps(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, other.name])


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claims_are_exclusive_and_stale_ones_are_broken(tmp_path):
    claim = tmp_path / "k.claim"
    with io.ClaimSet() as mine, io.ClaimSet() as other:
        assert mine.take(claim)
        owner = json.loads(claim.read_text())
        assert owner["host"] == socket.gethostname() and owner["pid"] == os.getpid()
        assert not other.take(claim)                         # held by a live process
        mine.release(claim)
        assert not claim.exists() and other.take(claim)
    assert not claim.exists()                                # closing releases what is held

    with io.ClaimSet(stale_after=60) as claims:
        claim.write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid(), "since": 0}))
        assert claims.take(claim)                            # its owner died on this host
        claims.release(claim)
        claim.write_text(json.dumps({"host": "elsewhere", "pid": 1, "since": 0}))
        assert not claims.take(claim)                        # another machine's, refreshed recently
        _age(claim, 120)
        assert claims.take(claim)                            # not refreshed for longer than stale_after
        assert json.loads(claim.read_text())["pid"] == os.getpid()
    assert list(tmp_path.iterdir()) == []


def test_held_claims_are_refreshed(tmp_path):
    claim = tmp_path / "k.claim"
    with io.ClaimSet(stale_after=0.4) as claims:
        assert claims.take(claim)
        _age(claim, 100)
        time.sleep(0.3)
        assert time.time() - claim.stat().st_mtime < 1.0
    with pytest.raises(ValueError, match="stale_after"):
        io.ClaimSet(stale_after=0)
