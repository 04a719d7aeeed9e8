"""A chapter's results file: written atomically, kept when only per-execution fields differ, read and
checked with errors that name the file and the field."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from vqstudy import results as rs
from vqstudy.claims import MIN_SEEDS


def _verdict(claim: str = "C1", verdict: str = "reproduced", seeds: int = MIN_SEEDS) -> rs.Verdict:
    test = {"key": f"{claim}-a", "effect": 0.5, "low": 0.4, "high": 0.6, "outcome": verdict,
            "seeds": list(range(seeds))}
    return rs.Verdict(claim, f"statement of {claim}", verdict, "measured 1.5 vs 3.25", {"x": 1.5}, [test], 0.97)


def _record(numbers: dict | None = None, timings: dict | None = None, wall_time_s: float = 12.5,
            claims: list[rs.Verdict] | None = None) -> dict:
    claims = [_verdict()] if claims is None else claims
    return rs.build_record("02_alpha", {"profile": "quick", "seeds": list(range(10))}, claims,
                           {"mse": 0.5} if numbers is None else numbers, {"python": "3.x"}, wall_time_s,
                           timings=timings)


def test_record_round_trips_through_the_file(tmp_path: Path):
    path = rs.results_path(tmp_path / "results", "02_alpha")
    assert path == tmp_path / "results" / "02_alpha.json"
    record = _record(timings={"ratio": 1.25})
    assert rs.write_results(path, record) is True
    loaded = rs.load_record(path, "02_alpha")
    assert loaded == json.loads(json.dumps(record))
    assert set(loaded) == set(rs.FIELDS) and set(loaded["claims"][0]) == set(rs.CLAIM_FIELDS)
    assert rs.fingerprint(loaded) == rs.fingerprint(record)
    assert not list(path.parent.glob(".*.tmp"))                         # written atomically: no temporary left
    assert "timings" not in _record()                                    # no timings taken: no field


def test_a_rerun_that_differs_only_in_volatile_fields_keeps_the_file(tmp_path: Path):
    path = rs.results_path(tmp_path, "02_alpha")
    rs.write_results(path, _record(timings={"ratio": 1.25}, wall_time_s=12.5))
    first = path.read_text()
    assert rs.write_results(path, _record(timings={"ratio": 1.75}, wall_time_s=99.0)) is False
    assert path.read_text() == first
    assert rs.fingerprint(json.loads(first)) == rs.fingerprint(_record(timings={"ratio": 1.75}, wall_time_s=99.0))


@pytest.mark.parametrize("change", [{"numbers": {"mse": 0.6}}, {"claims": [_verdict("C2")]}])
def test_a_changed_number_or_claim_rewrites_the_file(tmp_path: Path, change):
    path = rs.results_path(tmp_path, "02_alpha")
    rs.write_results(path, _record(timings={"ratio": 1.25}))
    changed = _record(timings={"ratio": 1.75}, **change)
    assert rs.write_results(path, changed) is True
    assert rs.read_results(path) == json.loads(json.dumps(changed))
    assert rs.fingerprint(changed) != rs.fingerprint(_record())


def test_claims_write_keeps_its_record_when_only_timings_change(tmp_path: Path):
    """Speed measurements differ at every execution: they are recorded, but a rerun with the same numbers
    leaves the file as it was; a changed number rewrites it."""
    from vqstudy.notebook import Claims

    path = Claims("08_x").write({"profile": "quick"}, {"mse": 0.5}, directory=tmp_path, timings={"ratio": 1.25})
    first = path.read_text()
    assert json.loads(first)["timings"] == {"ratio": 1.25}
    Claims("08_x").write({"profile": "quick"}, {"mse": 0.5}, directory=tmp_path, timings={"ratio": 1.75})
    assert path.read_text() == first
    Claims("08_x").write({"profile": "quick"}, {"mse": 0.6}, directory=tmp_path, timings={"ratio": 1.75})
    assert json.loads(path.read_text())["timings"] == {"ratio": 1.75}
    assert "timings" not in json.loads(Claims("08_x").write({"profile": "quick"}, directory=tmp_path).read_text())


def test_a_missing_or_non_json_file_is_an_error_naming_it(tmp_path: Path):
    path = tmp_path / "02_alpha.json"
    with pytest.raises(rs.ResultsError, match=r"02_alpha\.json does not exist"):
        rs.read_results(path)
    path.write_text("{not json")
    with pytest.raises(rs.ResultsError, match=r"02_alpha\.json is not valid JSON"):
        rs.load_record(path)
    path.write_text("[1, 2]")
    with pytest.raises(rs.ResultsError, match=r"02_alpha\.json does not hold a JSON object"):
        rs.load_record(path)


def _broken(tmp_path: Path, edit) -> Path:
    record = json.loads(json.dumps(_record()))
    edit(record)
    path = tmp_path / "02_alpha.json"
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.pop("parameters"), r"02_alpha\.json has no 'parameters' field"),
    (lambda r: r.pop("claims"), r"02_alpha\.json has no 'claims' field"),
    (lambda r: r["claims"][0].pop("evidence"), r"02_alpha\.json: claim C1 has no 'evidence' field"),
    (lambda r: r["claims"][0]["primary"][0].pop("seeds"), r"02_alpha\.json: claim C1 has a primary test without"),
    (lambda r: r.update(chapter="03_beta"), r"02_alpha\.json records chapter '03_beta', expected '02_alpha'"),
    (lambda r: r["claims"][0].update(claim="C10"), r"02_alpha\.json records an unknown claim 'C10'"),
    (lambda r: r["claims"][0].update(verdict="sort of"), r"02_alpha\.json: claim C1 has an invalid verdict 'sort of'"),
    (lambda r: r["claims"][0]["primary"][0].update(seeds=list(range(MIN_SEEDS - 1))),
     rf"02_alpha\.json: claim C1 was judged on fewer than {MIN_SEEDS} seeds \(C1-a\)"),
])
def test_a_malformed_record_is_an_error_naming_the_file_and_the_field(tmp_path: Path, edit, message):
    path = _broken(tmp_path, edit)
    with pytest.raises(rs.ResultsError, match=message):
        rs.load_record(path, "02_alpha")


def test_a_claim_not_testable_here_needs_no_seeds(tmp_path: Path):
    entry = rs.Verdict("C7", "statement of C7", "not testable here", "needs ImageNet", {})
    path = rs.results_path(tmp_path, "02_alpha")
    rs.write_results(path, _record(claims=[entry, _verdict("C1", seeds=MIN_SEEDS)]))
    assert [c["claim"] for c in rs.load_record(path, "02_alpha")["claims"]] == ["C7", "C1"]


def test_the_stored_results_files_are_well_formed():
    folder = Path(__file__).resolve().parents[1] / "results"
    files = sorted(p for p in folder.glob("[0-9][0-9]_*.json"))
    assert files
    for path in files:
        record = rs.load_record(path, path.stem)
        assert set(record) <= set(rs.FIELDS)
