"""`crl-train` end to end, as a user runs it (subprocesses, tiny configs)."""

import math

import pytest

from helpers import TINY, crl_train, read_csv


def test_tiny_run_writes_tensorboard_csv_config_and_params(tmp_path):
    run_dir = tmp_path / "run"
    video = ["video.enabled=true", "video.episodes=1", "video.width=64", "video.height=64"]
    result = crl_train(*TINY, *video, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (run_dir / "videos" / "final.mp4").stat().st_size > 0
    rows = read_csv(run_dir / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for r in rows:
        for name in ("eval/time_at_goal", "eval/success_any", "train/critic_loss", "train/actor_loss", "train/alpha"):
            assert math.isfinite(float(r[name])), name
    assert (run_dir / "config.yaml").read_text().count("episode_length: 20") == 1
    assert (run_dir / "params.msgpack").stat().st_size > 0

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("eval/time_at_goal", "train/critic_loss", "train/actor_loss", "train/entropy",
                "train/categorical_accuracy", "train/logits_pos", "train/logits_neg", "train/logsumexp",
                "train/env_steps_per_second", "eval/success_any"):
        assert tag in tags, tag
    events = acc.Scalars("eval/time_at_goal")
    assert [e.step for e in events] == [int(r["env_steps"]) for r in rows]
    assert [pytest.approx(e.value) for e in events] == [float(r["eval/time_at_goal"]) for r in rows]


def test_multirun_sweeps_depth(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = crl_train("-m", *TINY, "network.depth=0,4", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(p.parent for p in sweep_dir.glob("*/metrics.csv"))
    assert len(runs) == 2
    assert [p.name for p in runs] == ["0_point_u_maze_a0_c0_w16_b16_s0", "1_point_u_maze_a4_c4_w16_b16_s0"]
    for run in runs:
        assert len(read_csv(run / "metrics.csv")) == 2
