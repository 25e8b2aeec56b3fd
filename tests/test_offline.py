"""Offline training from fixed data (train.dataset, crl/dataset.py, crl-export-data), GCBC,
starting from another run's parameters (train.init_from, network.reinit_last_layers), and
learners that train on the run's batches without acting (train.learner_depths)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crl import buffer as replay
from crl import dataset as fixed_data
from crl.apps import export_data
from crl.config import ConfigError, from_dict
from crl.evaluate import evaluate, random_policy
from crl.networks import dense_layer_order, reinit_last_layers
from crl.run import Interrupted, build_envs, load_inputs, run_training
from crl.train import LEARNERS, Trainer
from envs.wrappers import TrainingEnv
from helpers import crl_train, deterministic_columns, read_csv, tensorboard_scalars, tiny_config, TINY
from test_learning import CONFIG as LEARNING
from test_run_safety import _interrupt_at_phase


def _no_env_steps(monkeypatch):
    """Any step of a training env fails the test (evaluation steps the eval env, not these)."""
    def refuse(self, state, action):
        raise AssertionError("the training env was stepped")

    monkeypatch.setattr(TrainingEnv, "step", refuse)


# -- a learned run's data, exported and trained on offline ----------------------------------


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """tests/test_learning.py's run (CRL learns the point U-maze), and its data exported."""
    where = tmp_path_factory.mktemp("offline_source")
    run_training(from_dict({**LEARNING, "logging": {"progress_bar": False, "tensorboard": False}}), where / "run")
    assert export_data.main([str(where / "run"), str(where / "data.npz")]) == 0
    return where


def test_export_writes_the_run_buffer_in_ogbench_layout(source_run, capsys):
    with np.load(source_run / "data.npz") as f:
        data = {k: f[k] for k in f.files}
    assert {"observations", "actions", "terminals", "next_observations", "rewards", "masks", "goals"} <= set(data)
    t = LEARNING["train"]
    n = t["num_envs"] * (t["prefill_steps"] + t["total_env_steps"] // t["num_envs"])  # every step, buffer not full
    assert data["observations"].shape == (n, 2) and data["actions"].shape == (n, 2) and data["goals"].shape == (n, 2)
    # every env's rows end a trajectory, and episodes last at most 100 steps
    ends = np.flatnonzero(data["terminals"])
    assert data["terminals"][-1] == 1 and len(ends) >= n // LEARNING["env"]["episode_length"]
    assert np.diff(ends).max() <= LEARNING["env"]["episode_length"]
    inside = data["terminals"][:-1] == 0
    np.testing.assert_array_equal(data["next_observations"][:-1][inside], data["observations"][1:][inside])
    # never overwrites a file
    assert export_data.main([str(source_run / "run"), str(source_run / "data.npz")]) == 2
    assert "exists" in capsys.readouterr().err.strip().splitlines()[-1]


def test_offline_crl_from_exported_data_beats_random_without_stepping_the_env(source_run, tmp_path, monkeypatch):
    """Offline CRL from the exported file learns (above the untrained actor and a random
    policy) without stepping the training env; the run directory itself gives the very
    same data."""
    cfg = from_dict({**LEARNING, "train": {**LEARNING["train"], "dataset": str(source_run / "data.npz")},
                     "logging": {"progress_bar": False}})
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env, *load_inputs(cfg, env))
    key = jax.random.PRNGKey(123)
    before = float(trainer.evaluate(trainer.init(jax.random.PRNGKey(cfg.seed)).actor_params, key)["time_at_goal"])
    rand = float(jax.jit(lambda k: evaluate(eval_env, random_policy(env.action_size), None, k, 256, 100))(key)
                 ["time_at_goal"])
    _no_env_steps(monkeypatch)
    row = run_training(cfg, tmp_path / "npz")
    after = row["eval/time_at_goal"]
    print(f"offline crl: time_at_goal untrained {before:.1f}, random {rand:.1f}, trained {after:.1f}")
    assert after > max(before, rand) + 15, (before, rand, after)
    rows = read_csv(tmp_path / "npz" / "metrics.csv")
    assert [int(r["env_steps"]) for r in rows] == [0, 0]
    assert int(rows[-1]["sgd_steps"]) == cfg.sgd_steps_per_training_step * cfg.training_steps_per_epoch * 2
    # TensorBoard's axis offline: SGD steps
    assert [s for s, _ in tensorboard_scalars(tmp_path / "npz")["eval/time_at_goal"]] == [int(r["sgd_steps"]) for r in rows]
    info = json.loads((tmp_path / "npz" / "run_info.json").read_text())
    from_file = fixed_data.load(source_run / "data.npz", 2, 2, 2)
    assert info["offline"] and info["dataset"]["sha256"] == fixed_data.digest(from_file)
    assert info["dataset"]["transitions"] == len(from_file["terminals"])
    # the run directory gives exactly the exported transitions (the fields a run uses)
    from_dir = fixed_data.load(source_run / "run", 2, 2, 2)
    assert set(from_dir) == {"observations", "actions", "terminals", "goals"}
    assert all(np.array_equal(from_dir[k], from_file[k]) for k in from_dir)


# -- a hand-made OGBench-layout file ----------------------------------------------------------


def _hand_made(lengths=(30, 45, 25, 60), state_dim=2, seed=0) -> dict:
    """Trajectories of a point walking in straight lines, in OGBench's layout (with the
    fields it documents that we do not use)."""
    rng = np.random.default_rng(seed)
    obs, act, term = [], [], []
    for length in lengths:
        a = rng.uniform(-1, 1, (length, 2)).astype(np.float32)
        start = rng.uniform(-1, 1, state_dim).astype(np.float32)
        obs.append(start + np.cumsum(0.05 * a, axis=0) - 0.05 * a[0])
        act.append(a)
        t = np.zeros(length, np.float32)
        t[-1] = 1
        term.append(t)
    obs, act, term = np.concatenate(obs), np.concatenate(act), np.concatenate(term)
    nxt = np.concatenate([obs[1:], obs[-1:]])
    return {"observations": obs, "actions": act, "terminals": term, "next_observations": nxt,
            "rewards": np.zeros_like(term), "masks": 1 - term, "qpos": obs.copy(), "qvel": np.zeros_like(obs)}


def test_a_hand_made_ogbench_file_loads_and_relabels_within_its_trajectories(tmp_path):
    path = tmp_path / "hand.npz"
    np.savez(path, **_hand_made())
    data = fixed_data.load(path, state_dim=2, action_size=2, goal_dim=2)
    assert set(data) == {"observations", "actions", "terminals", "next_observations"}  # the unused ones stay out
    buf = fixed_data.to_buffer(data, columns=1, goal_dim=2)
    assert buf.states.shape == (160, 1, 2) and int(buf.size) == 160
    np.testing.assert_array_equal(buf.episode_ids[:, 0], np.repeat([0, 1, 2, 3], [30, 45, 25, 60]))
    batch = replay.sample(jax.tree.map(jnp.asarray, buf), jax.random.PRNGKey(0), 512, 0.9, (0, 1), 100)
    assert bool(jnp.all(batch.episode_id == batch.goal_episode_id))
    assert bool(jnp.all(batch.offset >= 1))
    # two columns (two devices): the trajectories split between them, ids still per trajectory
    two = fixed_data.to_buffer(data, columns=2, goal_dim=2)
    assert two.states.shape == (80, 2, 2)
    np.testing.assert_array_equal(two.states[:, 1], data["observations"][80:])


def test_offline_gcbc_from_a_hand_made_file_resumes_exactly_after_ctrl_c(tmp_path, monkeypatch):
    """GCBC trains from a hand-made file without stepping the env, and a Ctrl-C inside an
    epoch resumes exactly (checkpoints hold the fixed buffer like any other)."""
    path = tmp_path / "hand.npz"
    np.savez(path, **_hand_made(lengths=(20,) * 12))
    config = tiny_config(agent={"name": "gcbc"}, network={"depth": 0},
                         train={"dataset": str(path), "total_env_steps": 1000, "num_epochs": 5})
    cfg = from_dict(config)
    _no_env_steps(monkeypatch)
    run_training(cfg, tmp_path / "straight")
    reference = deterministic_columns(read_csv(tmp_path / "straight" / "metrics.csv"))
    assert len(reference) == 5 and all(np.isfinite(float(r["train/actor_loss"])) for r in reference)
    _interrupt_at_phase(monkeypatch, 8)
    with pytest.raises(Interrupted):
        run_training(cfg, tmp_path / "cut")
    monkeypatch.undo()
    _no_env_steps(monkeypatch)
    run_training(cfg, tmp_path / "cut")
    assert deterministic_columns(read_csv(tmp_path / "cut" / "metrics.csv")) == reference


# -- bad datasets ----------------------------------------------------------------------------


def _broken(kind: str) -> dict:
    data = _hand_made()
    if kind == "missing":
        del data["terminals"]
    elif kind == "obs_size":
        data["observations"] = np.zeros((160, 3), np.float32)
    elif kind == "action_size":
        data["actions"] = np.zeros((160, 4), np.float32)
    elif kind == "length":
        data["actions"] = data["actions"][:100]
    elif kind == "nan":
        data["observations"][17, 1] = np.nan
    elif kind == "terminals":
        data["terminals"][3] = 0.5
    elif kind == "next":
        data["next_observations"][5] += 1.0
    elif kind == "actions_range":
        data["actions"][9, 0] = 3.0
    return data


@pytest.mark.parametrize("kind, says", [
    ("missing", "missing field 'terminals'"), ("obs_size", "field 'observations' has shape (160, 3)"),
    ("action_size", "field 'actions' has shape (160, 4)"), ("length", "field 'actions' has shape (100, 2)"),
    ("nan", "field 'observations' holds 1 non-finite values (first at row 17)"),
    ("terminals", "field 'terminals' must hold only 0 and 1"), ("next", "'next_observations' at row 5"),
    ("actions_range", "field 'actions' reaches 3"),
])
def test_a_bad_dataset_is_refused_in_one_line_before_anything_is_written(tmp_path, kind, says):
    path = tmp_path / "bad.npz"
    np.savez(path, **_broken(kind))
    cfg = from_dict(tiny_config(train={"dataset": str(path)}))
    with pytest.raises(ConfigError) as err:
        run_training(cfg, tmp_path / "run")
    message = str(err.value)
    assert message.startswith("train.dataset: ") and says in message and "\n" not in message, message
    assert message.count("train.dataset:") == 1, message  # one error, not one wrapped in another
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("section, says", [
    ({"train": {"dataset": "nowhere.npz"}}, "nowhere.npz': no such file"),
    ({"train": {"dataset": "data.csv"}}, "use a run directory of ours or a .npz file"),
    ({"agent": {"name": "gcbc"}}, "agent gcbc learns from fixed data only"),
    ({"network": {"reinit_last_layers": 1}}, "set train.init_from=<run dir> too"),
    ({"train": {"init_from": "nowhere"}}, "nowhere' is not allowed; give the directory of a finished run"),
    ({"train": {"learner_depths": [4, 6]}}, "train.learner_depths: [4, 6] is not allowed; use multiples of 4"),
    ({"train": {"learner_depths": [4, 4]}}, "use each depth once"),
    ({"train": {"dataset": "x.npz", "sampling": "window"}}, None),
])
def test_offline_settings_are_checked_in_one_line(tmp_path, monkeypatch, section, says):
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "x.npz", **_hand_made())
    with pytest.raises(ConfigError) as err:
        from_dict(tiny_config(**section))
    message = str(err.value)
    assert "\n" not in message and (says is None or says in message), message
    assert message.startswith(("train.", "agent", "network."))
    if says is None:
        assert message.startswith("train.sampling: 'window' is not allowed; use uniform with train.dataset")


def test_a_dataset_without_commanded_goals_is_refused_for_sac_without_her(tmp_path):
    path = tmp_path / "hand.npz"
    np.savez(path, **_hand_made())
    cfg = from_dict(tiny_config(agent={"name": "sac"}, train={"dataset": str(path)}))
    env, _ = build_envs(cfg)
    with pytest.raises(ConfigError, match="has no field 'goals'.*agent.her=true"):
        load_inputs(cfg, env)


def test_crl_train_refuses_a_bad_dataset_with_exit_2_and_leaves_no_run_dir(tmp_path):
    np.savez(tmp_path / "bad.npz", **_broken("missing"))
    result = crl_train(*TINY, f"train.dataset={tmp_path / 'bad.npz'}", f"hydra.run.dir={tmp_path / 'run'}",
                       cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("crl-train: config error: train.dataset: ") and "missing field 'terminals'" in lines[-1]
    assert not (tmp_path / "run").exists()


def test_flatten_buffer_orders_a_wrapped_ring_from_oldest_to_newest():
    cap, envs = 6, 2
    states = np.arange(cap * envs, dtype=np.float32).reshape(cap, envs, 1)
    ids = np.array([[3, 5], [3, 5], [4, 6], [2, 4], [2, 4], [3, 4]], np.int32)  # rows 3.. are the oldest
    out = fixed_data.flatten_buffer(states, states, ids, np.zeros((cap, envs, 0)), insert_row=3, size=6)
    order = [3, 4, 5, 0, 1, 2]
    np.testing.assert_array_equal(out["observations"][:6, 0], states[order, 0, 0])
    np.testing.assert_array_equal(out["observations"][6:, 0], states[order, 1, 0])
    # env 0: ids 2 2 3 3 3 4 -> trajectory ends at positions 1, 4, 5; env 1: 4 4 4 5 5 6 -> 2, 4, 5
    np.testing.assert_array_equal(np.flatnonzero(out["terminals"]), [1, 4, 5, 8, 10, 11])
    assert "goals" not in out


# -- init_from and cold-started last layers ---------------------------------------------------


def test_reinit_last_layers_replaces_exactly_the_last_n_dense_layers_of_every_network():
    cfg = from_dict(tiny_config(network={"depth": 8}))
    env, _ = build_envs(cfg)
    for agent in ("crl", "sac"):  # SAC: twin Q, a leading axis of 2 on every critic parameter
        trainer = Trainer(from_dict({**tiny_config(network={"depth": 8}), "agent": {"name": agent}}), env)
        init = jax.jit(trainer.init_params)
        loaded, fresh = init(jax.random.PRNGKey(1)), init(jax.random.PRNGKey(2))
        out = reinit_last_layers(loaded, fresh, 3)  # the head and the last block's last two layers
        mlps = [("actor", "trunk")] + ([("critic", "sa_encoder"), ("critic", "g_encoder")] if agent == "crl"
                                       else [("critic", "q")])
        for role, name in mlps:
            a, f, o = loaded[role][name], fresh[role][name], out[role][name]
            assert dense_layer_order(a)[:3] == [("head",), ("blocks", 1, "DenseNormAct_3"), ("blocks", 1, "DenseNormAct_2")]
            assert jax.tree.all(jax.tree.map(jnp.array_equal, o["head"], f["head"]))
            extra = f["head"]["kernel"].ndim - 2
            idx = (slice(None),) * extra
            for layer in ("DenseNormAct_3", "DenseNormAct_2"):
                for x, y, z in zip(jax.tree.leaves(o["blocks"][layer]), jax.tree.leaves(f["blocks"][layer]),
                                   jax.tree.leaves(a["blocks"][layer])):
                    np.testing.assert_array_equal(x[idx + (1,)], y[idx + (1,)])  # last block: fresh
                    np.testing.assert_array_equal(x[idx + (0,)], z[idx + (0,)])  # first block: loaded
            for layer in ("DenseNormAct_1", "DenseNormAct_0"):
                assert jax.tree.all(jax.tree.map(jnp.array_equal, o["blocks"][layer], a["blocks"][layer]))
            assert jax.tree.all(jax.tree.map(jnp.array_equal, o["input"], a["input"]))
        assert reinit_last_layers(loaded, fresh, 0) is loaded


def test_init_from_starts_from_another_runs_parameters_with_a_cold_head(tmp_path):
    source = from_dict(tiny_config(network={"depth": 0}, train={"total_env_steps": 200, "num_epochs": 1}))
    run_training(source, tmp_path / "source")
    cfg = from_dict(tiny_config(network={"depth": 0, "reinit_last_layers": 1},
                                train={"init_from": str(tmp_path / "source")}))
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env, *load_inputs(cfg, env))
    ts = trainer.init(jax.random.PRNGKey(cfg.seed))
    start, fresh = trainer.start_params, trainer.init_params(jax.random.split(jax.random.PRNGKey(cfg.seed), 3)[0])
    got = trainer.params(ts)
    for role, name in (("actor", "trunk"), ("critic", "sa_encoder"), ("critic", "g_encoder")):
        assert same(got[role][name]["input"], start[role][name]["input"])
        assert same(got[role][name]["head"], fresh[role][name]["head"])
        assert not same(got[role][name]["head"], start[role][name]["head"])
    assert int(ts.learner["actor"].step) == 0  # a fresh optimiser
    # another depth's parameters: one line naming the key and the shapes
    deeper = from_dict(tiny_config(network={"depth": 4}, train={"init_from": str(tmp_path / "source")}))
    with pytest.raises(ConfigError, match=r"^train.init_from: .*params.msgpack") as err:
        load_inputs(deeper, env)
    assert "\n" not in str(err.value)


# -- learners that do not act -------------------------------------------------------------------


def same(x, y) -> bool:
    """Equal pytrees, leaf by leaf (the Flax TrainStates' optimisers are other objects)."""
    xs, ys = jax.tree.leaves(x), jax.tree.leaves(y)
    return len(xs) == len(ys) and all(bool(jnp.array_equal(u, v)) for u, v in zip(xs, ys))


class _TwinInit(Trainer):
    """Learners initialised exactly as the run's own agent (only for this test)."""

    def learner_init_key(self, key, index):
        return key


def test_learners_never_act_and_see_exactly_the_collectors_batches():
    """A learner of the collector's depth, initialised as the collector, ends bit for bit
    where the collector ends: it took its steps on exactly the collector's batches with the
    same keys. And the learners change nothing of the collector's run: its buffer, env
    state and parameters are those of the same run without learners."""
    base = tiny_config(network={"depth": 0})
    plain_cfg = from_dict(base)
    learn_cfg = from_dict({**base, "train": {**base["train"], "learner_depths": [0]}})
    env, eval_env = build_envs(plain_cfg)
    plain, twin = Trainer(plain_cfg, env, eval_env), _TwinInit(learn_cfg, env, eval_env)
    key = jax.random.PRNGKey(3)
    a, b = plain.prefill(plain.init(key)), twin.prefill(twin.init(key))
    for _ in range(3):
        a, _, _ = plain.train_phase(a)
        b, metrics, _ = twin.train_phase(b)
    assert "depth_0/critic_loss" in metrics and "depth_0/actor_loss" in metrics
    assert same(a.buffer, b.buffer) and same(a.env_state, b.env_state) and int(a.env_steps) == int(b.env_steps)
    own = {k: v for k, v in b.learner.items() if k != LEARNERS}
    assert same(a.learner, own)
    assert same(plain.params(a), twin.learner_params(b)["depth_0"])  # the twin learner is the collector
    k = jax.random.PRNGKey(9)
    out = twin.evaluate(b.actor_params, k, twin.learner_actor_params(b))
    assert out["depth_0/time_at_goal"] == out["time_at_goal"]
    # with their own initialisation (the default) the learners are other networks
    assert not same(Trainer.learner_init_key(plain, key, 0), key)
