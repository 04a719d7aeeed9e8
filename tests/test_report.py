"""`vqstudy diagnose`: every input format, the streaming statistics, and every bad input (exit 2, nothing written)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vqstudy import cli
from vqstudy.diagnostics import diagnose
from vqstudy.quantize import VectorQuantizer, nearest_code
from vqstudy.report import diagnose_files, load_codebooks


# nearest distances come from float32 ||x||^2 - 2 x.c + ||c||^2 in both, summed in a different order
FLOAT32_DISTANCES = ("embedding_to_code_distance", "code_to_embedding_distance")


def _data(n=3000, d=8, k=32, seed=0):
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(n, d)) * np.linspace(2, 0.5, d) + 1.0).astype(np.float32)
    c = z[rng.choice(n, k, replace=False)] + rng.normal(scale=0.05, size=(k, d)).astype(np.float32)
    return z, c


@pytest.fixture
def files(tmp_path):
    z, c = _data()
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "c.npy", c)
    np.save(tmp_path / "labels.npy", np.random.default_rng(1).integers(0, 5, len(z)))
    return tmp_path, z, c


def _metrics(result, i=0):
    return result["sections"][i]["metrics"]


def test_streaming_matches_in_memory_diagnose(files):
    tmp, z, c = files
    labels = np.load(tmp / "labels.npy")
    idx = nearest_code(torch.from_numpy(z), torch.from_numpy(c))
    ref = diagnose(z, idx, c, labels)
    for chunk in (1, 333, 100_000):  # one row per chunk, uneven chunks, everything at once
        got = _metrics(diagnose_files(tmp / "c.npy", tmp / "z.npy", labels=tmp / "labels.npy", chunk_rows=chunk))
        for key, value in got.items():
            if key in ref and isinstance(value, (int, float)):
                rel = 1e-4 if key in FLOAT32_DISTANCES else 1e-6
                assert value == pytest.approx(ref[key], rel=rel, abs=1e-9), (chunk, key)
            elif key in ref and isinstance(value, list):
                assert np.allclose(value, ref[key], rtol=1e-6, atol=1e-12), (chunk, key)
    assert set(ref) - set(got) == {"coverage", "within_cluster_radius"}  # need a second pass: not claimed


def test_given_indices_are_used_as_given(files):
    tmp, z, c = files
    idx = np.zeros(len(z), dtype=np.int64)  # everything on code 0: a collapsed tokenizer
    np.save(tmp / "idx.npy", idx)
    res = diagnose_files(tmp / "c.npy", tmp / "z.npy", tmp / "idx.npy")
    m = _metrics(res)
    assert m["used_codes"] == 1 and m["perplexity"] == pytest.approx(1.0)
    assert m["quantization_error"] == pytest.approx(((z - c[0]) ** 2).sum(1).mean(), rel=1e-9)
    assert res["sections"][0]["verdicts"]["tokens"] == "collapsed"
    only_idx = diagnose_files(tmp / "c.npy", indices=tmp / "idx.npy")
    assert _metrics(only_idx)["used_codes"] == 1 and "embed_effective_dim" not in _metrics(only_idx)
    assert only_idx["sections"][0]["verdicts"] == {"tokens": "collapsed", "embeddings": "n/a"}


def test_format_vqstudy_state_dict(files):
    tmp, z, c = files
    vq = VectorQuantizer(len(c), c.shape[1], update="ema")
    vq.set_codebook(torch.from_numpy(c))
    torch.save(vq.state_dict(), tmp / "ours.pt")  # holds codebook and ema_sum (K, D): only codebook is one
    sections = load_codebooks(tmp / "ours.pt")
    assert [s.name for s in sections] == ["codebook"] and np.array_equal(sections[0].codes, c)
    torch.save({"state_dict": {f"quantizer.{k}": v for k, v in vq.state_dict().items()}}, tmp / "wrapped.pth")
    assert [s.name for s in load_codebooks(tmp / "wrapped.pth")] == ["quantizer.codebook"]


def test_format_npy_and_multi_head_npy(files):
    tmp, z, c = files
    assert len(load_codebooks(tmp / "c.npy")) == 1
    np.save(tmp / "heads.npy", np.stack([c[:, :4], c[:, 4:]]))  # (2, K, 4): one codebook per half of D
    res = diagnose_files(tmp / "heads.npy", tmp / "z.npy")
    assert [s["name"] for s in res["sections"]] == ["heads.npy[head 0]", "heads.npy[head 1]"]
    for h in range(2):
        ref = nearest_code(torch.from_numpy(z[:, 4 * h:4 * h + 4]), torch.from_numpy(c[:, 4 * h:4 * h + 4]))
        assert _metrics(res, h)["used_codes"] == len(np.unique(ref.numpy()))


def test_format_safetensors(files):
    from safetensors.numpy import save_file

    tmp, z, c = files
    save_file({"quantizer._codebook.embed": c[None], "quantizer._codebook.embed_avg": c[None]}, str(tmp / "c.safetensors"))
    res = diagnose_files(tmp / "c.safetensors", tmp / "z.npy")
    assert res["sections"][0]["name"] == "quantizer._codebook.embed"
    assert _metrics(res)["used_codes"] == _metrics(diagnose_files(tmp / "c.npy", tmp / "z.npy"))["used_codes"]


def test_format_vector_quantize_matches_the_library_indices(tmp_path):
    from vector_quantize_pytorch import VectorQuantize

    torch.manual_seed(0)
    vq = VectorQuantize(dim=8, codebook_size=16, heads=2, separate_codebook_per_head=True, rotation_trick=False)
    x = torch.randn(1, 2000, 8)
    vq.train()
    vq(x)  # one EMA step: codebooks away from their init
    vq.eval()
    with torch.no_grad():
        _, lib_idx, _ = vq(x)
    torch.save(vq.state_dict(), tmp_path / "vq.pt")
    np.save(tmp_path / "z.npy", x[0].numpy())
    res = diagnose_files(tmp_path / "vq.pt", tmp_path / "z.npy")  # project_in 8 -> 16, then 2 heads of 8
    assert [s["name"] for s in res["sections"]] == ["_codebook.embed[head 0]", "_codebook.embed[head 1]"]
    for h in range(2):
        counts = np.bincount(lib_idx[0, :, h].numpy(), minlength=16)
        assert _metrics(res, h)["used_codes"] == int((counts > 0).sum())
        assert _metrics(res, h)["n_vectors"] == 2000
    np.save(tmp_path / "idx.npy", lib_idx[0].numpy())
    given = diagnose_files(tmp_path / "vq.pt", tmp_path / "z.npy", tmp_path / "idx.npy")
    for h in range(2):
        assert _metrics(given, h)["quantization_error"] == pytest.approx(_metrics(res, h)["quantization_error"], rel=1e-6)


def test_format_residual_vq_one_section_per_level(tmp_path):
    from vector_quantize_pytorch import ResidualVQ

    torch.manual_seed(0)
    rvq = ResidualVQ(dim=8, codebook_size=16, num_quantizers=3, rotation_trick=False)
    x = torch.randn(1, 2000, 8)
    rvq.train()
    rvq(x)
    rvq.eval()
    with torch.no_grad():
        _, lib_idx, _ = rvq(x)
    torch.save(rvq.state_dict(), tmp_path / "rvq.pt")
    np.save(tmp_path / "z.npy", x[0].numpy())
    res = diagnose_files(tmp_path / "rvq.pt", tmp_path / "z.npy")
    assert [s["name"] for s in res["sections"]] == [f"layers.{i}._codebook.embed" for i in range(3)]
    for level in range(3):
        counts = np.bincount(lib_idx[0, :, level].numpy(), minlength=16)
        assert _metrics(res, level)["used_codes"] == int((counts > 0).sum()), level
        assert _metrics(res, level)["perplexity"] == pytest.approx(
            np.exp(-(p := counts[counts > 0] / counts.sum()) @ np.log(p)), rel=1e-9), level
    # each level sees a smaller residual than the one before
    variances = [_metrics(res, i)["embed_total_variance"] for i in range(3)]
    assert variances[0] > variances[1] > variances[2]


def _run(capsys, *argv):
    code = cli.main(["diagnose", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_writes_json_and_report(files, capsys):
    tmp, z, c = files
    code, out, err = _run(capsys, tmp / "c.npy", "--embeddings", tmp / "z.npy", "--labels", tmp / "labels.npy",
                          "--json", tmp / "out" / "r.json", "--report", tmp / "rep")
    assert code == 0, err
    assert "tokens collapse: " in out and "embeddings collapse: " in out and "mode entropy H" in out
    data = json.loads((tmp / "out" / "r.json").read_text())
    assert data["sections"][0]["metrics"]["n_vectors"] == len(z)
    assert data["sections"][0]["verdicts"]["tokens"] in ("healthy", "watch", "collapsed")
    page = (tmp / "rep" / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "http" not in page


def _bad(tmp, name, array):
    path = tmp / name
    np.save(path, array)
    return path


def _bad_inputs(tmp, z, c):
    nan = z.copy()
    nan[1234, 3] = np.nan
    inf = z.copy()
    inf[7, 0] = np.inf
    (tmp / "empty.npy").write_bytes(b"")
    torch.save({"encoder.weight": torch.randn(4, 4), "step": torch.tensor(3)}, tmp / "nocodes.pt")
    torch.save({"a.codebook": torch.from_numpy(c), "b.codebook": torch.from_numpy(c)}, tmp / "two.pt")
    return {
        "dimension": ([tmp / "c.npy", "--embeddings", _bad(tmp, "z5.npy", z[:, :5])], "z5.npy", "dimension"),
        "nan": ([tmp / "c.npy", "--embeddings", _bad(tmp, "nan.npy", nan)], "nan.npy", "row 1234 holds NaN or Inf"),
        "inf": ([tmp / "c.npy", "--embeddings", _bad(tmp, "inf.npy", inf)], "inf.npy", "row 7 holds NaN or Inf"),
        "nan codebook": ([_bad(tmp, "cnan.npy", np.where(np.arange(c.size).reshape(c.shape) == 5, np.nan, c)),
                          "--embeddings", tmp / "z.npy"], "cnan.npy", "NaN or Inf"),
        "empty embeddings": ([tmp / "c.npy", "--embeddings", tmp / "empty.npy"], "empty.npy", "empty file"),
        "empty codebook": ([tmp / "empty.npy"], "empty.npy", "empty file"),
        "zero rows": ([tmp / "c.npy", "--embeddings", _bad(tmp, "z0.npy", z[:0])], "z0.npy", "N, D >= 1"),
        "no codebook": ([tmp / "nocodes.pt"], "nocodes.pt", "no codebook found"),
        "several": ([tmp / "two.pt"], "two.pt", "choose one with --key"),
        "out of range": ([tmp / "c.npy", "--embeddings", tmp / "z.npy", "--indices",
                          _bad(tmp, "idx.npy", np.full(len(z), len(c)))], "idx.npy", "out of range"),
        "negative index": ([tmp / "c.npy", "--indices", _bad(tmp, "neg.npy", np.full(10, -1))], "neg.npy", "out of range"),
        "indices shape": ([tmp / "c.npy", "--embeddings", tmp / "z.npy", "--indices",
                           _bad(tmp, "short.npy", np.zeros(10, dtype=int))], "short.npy", "shape"),
        "labels count": ([tmp / "c.npy", "--embeddings", tmp / "z.npy", "--labels",
                          _bad(tmp, "lab.npy", np.zeros(3, dtype=int))], "lab.npy", "labels"),
        "missing file": ([tmp / "nope.pt"], "nope.pt", "no such file"),
        "not a tensor file": ([_bad(tmp, "text.npy", np.zeros(3))], "text.npy", "codebook"),
        "wrong key": ([tmp / "two.pt", "--key", "c."], "two.pt", "no codebook under --key"),
    }


@pytest.mark.parametrize("case", ["dimension", "nan", "inf", "nan codebook", "empty embeddings", "empty codebook",
                                  "zero rows", "no codebook", "several", "out of range", "negative index",
                                  "indices shape", "labels count", "missing file", "not a tensor file", "wrong key"])
def test_bad_input_is_one_line_exit_2_nothing_written(files, capsys, case):
    tmp, z, c = files
    argv, filename, problem = _bad_inputs(tmp, z, c)[case]
    code, out, err = _run(capsys, *argv, "--json", tmp / "r.json", "--report", tmp / "rep")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqstudy diagnose: error: "), err
    assert filename in lines[0] and problem in lines[0], lines[0]
    assert not (tmp / "r.json").exists() and not (tmp / "rep").exists()
    assert not list(tmp.glob(".r.json.*"))  # no temporary file left behind either


def test_key_chooses_among_several(files, capsys):
    tmp, z, c = files
    torch.save({"a.codebook": torch.from_numpy(c), "b.codebook": torch.from_numpy(c[:8])}, tmp / "two.pt")
    code, out, err = _run(capsys, tmp / "two.pt", "--key", "b.codebook", "--embeddings", tmp / "z.npy")
    assert code == 0, err
    assert "== b.codebook: K = 8, D = 8" in out


def test_howto_python_equivalent_runs(files, monkeypatch):
    """The how-to page's Python block for the command line, run on files named as the page names them."""
    import re
    from pathlib import Path

    tmp, z, c = files
    page = (Path(__file__).resolve().parents[1] / "book" / "diagnose-your-tokenizer.md").read_text()
    block = re.search(r"```\{code-block\} python\n(.*?)```", page, flags=re.S).group(1)
    vq = VectorQuantizer(len(c), c.shape[1])
    vq.set_codebook(torch.from_numpy(c))
    torch.save(vq.state_dict(), tmp / "tokenizer.pt")
    (tmp / "z.npy").rename(tmp / "embeddings.npy")
    monkeypatch.chdir(tmp)
    namespace: dict = {}
    exec(compile(block, "diagnose-your-tokenizer.md", "exec"), namespace)
    assert set(namespace["section"]["verdicts"]) == {"tokens", "embeddings"}
    assert namespace["section"]["metrics"]["n_vectors"] == len(z)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the resident memory from /proc")
def test_streaming_memory_stays_flat(tmp_path, monkeypatch):
    """Resident memory must not grow with the rows streamed (the memmap's pages and the heap are handed back)."""
    import re

    from vqstudy import report

    rng = np.random.default_rng(0)
    emb = np.lib.format.open_memmap(tmp_path / "z.npy", mode="w+", dtype=np.float32, shape=(40 * 2048, 256))
    for start in range(0, len(emb), 16_384):
        emb[start:start + 16_384] = rng.normal(size=(16_384, 256))
    emb.flush()
    del emb
    np.save(tmp_path / "c.npy", rng.normal(size=(1024, 256)).astype(np.float32))

    def resident_mb() -> float:
        status = Path("/proc/self/status").read_text()
        return sum(int(re.search(rf"{k}:\s+(\d+)", status).group(1)) for k in ("RssAnon", "RssFile")) / 1024

    seen: list[float] = []
    release = report._release

    def spy(arr, upto):
        release(arr, upto)
        seen.append(resident_mb())

    monkeypatch.setattr(report, "_release", spy)
    report.diagnose_files(tmp_path / "c.npy", tmp_path / "z.npy", chunk_rows=2048)
    assert len(seen) == 40
    # the last 30 chunks read 63 MB of embeddings (126 MB as float64): none of that may stay resident
    assert seen[-1] - seen[9] < 20, (seen[9], seen[-1])
