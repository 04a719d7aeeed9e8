"""Table helpers the chapters build their primary tests and secondary tables from."""
import math

import pandas as pd
import pytest

from vqstudy import RunConfig, train
from vqstudy.tables import by_seed, evaluation, plan_frame, saturation_point, trajectory_frame


@pytest.fixture(scope="module")
def deferred_run():
    """A deferred run whose warm-up is its whole budget but one step (chapter 3's autoencoder arm)."""
    config = RunConfig().replace(data={"n_per_cluster": 100}, quantizer={"codebook_size": 16},
                                 train={"schedule": "deferred", "steps": 21, "warmup_steps": 20,
                                        "eval_every": 10, "batch_size": 64})
    return train(config)


def test_evaluation_picks_the_last_one_before_quantizing(deferred_run):
    ae = evaluation(deferred_run, "autoencoder")
    assert ae["step"] == 20 and ae["quantized"] is False
    assert evaluation(deferred_run)["step"] == 21 and evaluation(deferred_run)["quantized"] is True
    assert ae["recon_error"] != evaluation(deferred_run)["recon_error"]
    with pytest.raises(ValueError, match="phase"):
        evaluation(deferred_run, "warmup")


def test_evaluation_of_a_joint_run_has_no_autoencoder_phase(tiny_config):
    with pytest.raises(ValueError, match="no evaluation before quantizing"):
        evaluation(train(tiny_config.replace(train={"steps": 2, "eval_every": 2})), "autoencoder")


def test_plan_frame_shares_a_run_between_rows_and_reads_each_rows_phase(deferred_run):
    config = deferred_run.config
    plan = pd.DataFrame({"arm": ["a", "b"], "phase": ["final", "autoencoder"], "config": [config, config]})
    frame = plan_frame(plan, {config: deferred_run})
    assert list(frame.arm) == ["a", "b"] and "config" not in frame.columns
    assert list(frame.seed) == [config.train.seed] * 2
    assert frame.recon_error.tolist() == [deferred_run.final["recon_error"],
                                          evaluation(deferred_run, "autoencoder")["recon_error"]]
    with pytest.raises(ValueError, match="no result"):
        plan_frame(plan, {})
    with pytest.raises(ValueError, match="'config' column"):
        plan_frame(plan.drop(columns="config"), {config: deferred_run})


def test_trajectory_frame_keeps_the_quantized_eval_at_the_switch(deferred_run):
    frame = trajectory_frame([deferred_run], "deferred", ["embed_effective_dim", "no_such_metric"])
    assert frame.step.tolist() == [0, 10, 20, 21]
    assert frame.set_index("step").quantized.to_dict() == {0: False, 10: False, 20: True, 21: True}
    assert math.isnan(frame.no_such_metric.iloc[0])
    with pytest.raises(ValueError, match="condition labels"):
        trajectory_frame([deferred_run], ["a", "b"], [])


def test_by_seed_selects_one_arm():
    frame = pd.DataFrame({"arm": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "m": [1.0, 2.0, 3.0, 4.0]})
    assert by_seed(frame, "m", arm="b") == {0: 3.0, 1: 4.0}
    with pytest.raises(ValueError, match="repeat seeds"):
        by_seed(frame, "m")
    with pytest.raises(ValueError, match="no rows"):
        by_seed(frame, "m", arm="c")
    with pytest.raises(ValueError, match="unknown column"):
        by_seed(frame, "m", depth=2)


def test_saturation_point():
    dims = pd.Series([3.0, 8.0, 9.5, 10.0, 9.0], index=[4, 8, 16, 32, 128])
    assert saturation_point(dims, higher_is_better=True) == 16
    mse = pd.Series([9.0, 2.0, 1.0, 1.5], index=[4, 8, 16, 32])
    assert saturation_point(mse, higher_is_better=False) is None   # the widest falls out again
    assert saturation_point(mse, higher_is_better=False, tolerance=0.5) == 16
    with pytest.raises(ValueError, match="tolerance"):
        saturation_point(dims, True, tolerance=1.0)


def test_contrast_states_both_arms_at_each_key():
    from vqstudy.tables import contrast

    means = pd.DataFrame({"m": [0.004356, 2.0, 1.36, 10.0]},
                         index=pd.MultiIndex.from_tuples([("u", 8), ("u", 32), ("t", 8), ("t", 32)]))
    assert contrast(means, "m", ("u", "t"), [8, 32], "{}-D") == "8-D: 0.00436 against 1.36; 32-D: 2 against 10"
    with pytest.raises(ValueError, match="no row"):
        contrast(means, "m", ("u", "t"), [2])
    with pytest.raises(ValueError, match="unknown metric"):
        contrast(means, "x", ("u", "t"), [8])


def test_value_range():
    from vqstudy.tables import value_range

    assert value_range([3.0, 1.234, 2.0]) == "1.23–3"
    assert value_range([7.0, 7.0]) == "7"
    with pytest.raises(ValueError, match="empty"):
        value_range([])
