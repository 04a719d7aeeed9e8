"""The fair benchmark's machinery: rotated interleaving, paired ratios, targets and a page without 'nan'."""
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("faiss")
pytest.importorskip("vector_quantize_pytorch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_quantizer as bench  # noqa: E402
import perf_report  # noqa: E402


def test_interleave_rotates_the_order_and_times_every_arm_each_round():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = bench.interleave(fns, rounds=4, min_sample_s=0.0)
    assert calls[:6] == list("aabbcc")  # warm-up: twice each, cheap calls
    assert calls[6:] == list("abc" "bca" "cab" "abc")
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4, "c": 4}
    with pytest.raises(ValueError, match="rounds"):
        bench.interleave(fns, rounds=0)


def test_a_cheap_arm_is_timed_over_repeated_calls_and_reported_per_call():
    calls = []
    fns = {"cheap": lambda: calls.append("cheap"), "slow": lambda: (calls.append("slow"), time.sleep(0.03))}
    times = bench.interleave(fns, rounds=2, min_sample_s=0.02)
    assert calls.count("slow") == 2 + 2 and calls.count("cheap") > 2 + 2 * 10   # 2 warm-ups, then 1 per round
    assert all(0.025 < t < 0.2 for t in times["slow"]) and all(t < 0.002 for t in times["cheap"])
    assert bench.repeats_for(0.001, 0.2) == 200 and bench.repeats_for(5.0, 0.2) == 1 and bench.repeats_for(0.0) >= 1


def test_paired_ratio_is_taken_within_rounds():
    r = bench.paired_ratio({"x": [2.0, 4.0, 6.0], "y": [1.0, 4.0, 2.0]}, "x", "y")
    assert (r["median"], r["min"], r["max"], r["n"]) == (2.0, 1.0, 3.0, 3)


def test_floor_and_reference_find_the_same_codes_as_nearest_code():
    x, codes = bench.make_data(300, 8, 40)
    fns = bench.assign_fns(x, codes)
    assert fns["floor"]() is None
    assert (fns["reference"]() == fns["vqstudy"]()).all() and (fns["faiss"]() == fns["vqstudy"]()).all()


def test_the_library_arm_takes_the_same_step_as_ours():
    row = bench.step_check(512, 8, 32)
    assert row["passed"] and row["agree"] == 1.0


def _data(passed_ratio: float) -> dict:
    times = {"vqstudy": [1.0, 1.2, 1.1], "faiss": [1.0, 1.0, 1.0], "reference": [0.9, 0.9, 0.9],
             "floor": [0.5, 0.5, 0.5], "vqstudy (faiss backend)": [passed_ratio] * 3}
    results = [{"workload": "assign", "n": 16384, "d": 64, "k": 1024, "times": times,
                "arms": {k: bench.spread(v) for k, v in times.items()}}]
    return {"results": results, "targets": bench.all_targets(results, []), "memory": [], "memory_error": None,
            "gate": [], "step_check": [], "gate_passed": True, "started": "now", "duration_s": 60.0,
            "config": {**bench.MODES["quick"], "mode": "quick", "threads": 2, "ema_decay": 0.99, "beta": 0.25,
                       "eps": 1e-5, "kmeans_iters": 20, "chunk_size": 8192, "memory_bound": 1.5},
            "machine": {"cpu": "test", "note": bench.SHARED_MACHINE_NOTE}}


def test_the_machine_note_follows_the_load_before_timing():
    assert bench.machine_note([2.1, 1.0, 0.5]) == bench.SHARED_MACHINE_NOTE
    assert bench.machine_note([0.1, 1.0, 3.0]) == bench.IDLE_MACHINE_NOTE


@pytest.mark.filterwarnings("error::UserWarning")   # e.g. a figure whose panels collapse to no height
def test_targets_and_page_mark_misses_and_print_no_nan(tmp_path):
    data = _data(passed_ratio=1.0)
    by = {t["name"]: t for t in data["targets"]}
    assert by["assignment vs FAISS"]["ratio"]["median"] == pytest.approx(1.1) and by["assignment vs FAISS"]["passed"]
    assert not by["assignment vs chunked floor"]["passed"]  # 2.2x the floor
    perf_report.render(data, tmp_path)
    page = (tmp_path / "performance.md").read_text()
    assert "nan" not in page.lower() and "**missed**" in page and "not measured" in page
    assert "2.2× [" in page and (tmp_path / "figures" / "performance.png").stat().st_size > 0


def test_the_conv_seed_batching_ceiling_trains_chapter_9s_tokenizer_at_both_batch_sizes(monkeypatch):
    """The configs it times (the real timing is the benchmark's job, not a test's): chapter 9's tokenizer from
    a random codebook, at the batch and at S times it, each for n and 2n steps, in alternating rounds."""
    import bench_seedbatch

    calls = []

    def fake_train(config, progress):   # takes time in proportion to the work, so no step time is zero
        calls.append(config)
        time.sleep(2e-4 * config.train.steps * config.train.batch_size / 128)

    monkeypatch.setattr(bench_seedbatch, "train", fake_train)
    result = bench_seedbatch.conv_step_ceiling(seeds=3, steps=5, rounds=2)
    assert [(c.train.batch_size, c.train.steps) for c in calls] == [
        (128, 10), (128, 5), (384, 10), (384, 5), (384, 10), (384, 5), (128, 10), (128, 5)]
    assert {(c.model.kind, c.quantizer.codebook_size, c.quantizer.init, c.data.name) for c in calls} == {
        ("conv", 1024, "normal", "mnist5k")}
    assert set(result["step_seconds"]) == {"one seed", "batch x 3"}
    assert result["ratio_min"] <= result["ratio"] <= result["ratio_max"]
    assert result["per_seed_speedup"] == pytest.approx(3 / result["ratio"])


def test_profiled_time_is_split_by_kind_of_work_and_the_rest_is_what_no_kernel_accounts_for():
    import bench_seedbatch as sb

    events = [("aten::mm", 0.5), ("aten::addmm", 0.25), ("aten::bmm", 1.0), ("aten::baddbmm", 0.25),
              ("aten::_fused_adam_", 0.125), ("aten::threshold_backward", 0.25), ("aten::copy_", 0.125),
              ("autograd::engine::evaluate_function: AddmmBackward0", 0.5), ("Optimizer.step#Adam.step", 0.5)]
    seconds = sb.kernel_seconds(events, wall=3.5)
    assert list(seconds) == list(sb.KERNEL_CLASSES)
    assert seconds == {"matrix products": 2.0, "optimizer": 0.125, "other kernels": 0.375, "rest": 1.0}
    assert sb.kernel_seconds([("aten::mm", 2.0)], wall=1.5)["rest"] == 0.0   # never negative
    from vqstudy.book.cost import KERNEL_CLASSES
    assert list(KERNEL_CLASSES) == list(sb.KERNEL_CLASSES)                   # the page shows every class, in order
