"""The paper's score and explanatory figures on tiny real runs: the last-5 score of a real
metrics.csv, the actor x critic depth grid of a real run, CRL's embeddings along evaluation
episodes (crl.apps.figures), and the critic's value map over the ant U4 maze
(crl.apps.analysis.value_map on a random-init ant trainer: one Brax build for the module)."""

import jax
import numpy as np
import pandas as pd
import pytest

import helpers
from crl.apps.analysis import far_goal, value_map
from crl.apps.collect import aggregate, collect_runs, load_run
from crl.apps.figures import depth_grids, embeddings, pca_2d
from crl.config import from_dict
from crl.run import build_envs, run_training
from crl.train import Trainer

# One real CRL run for the module: actor depth 0, critic depth 4, 6 epochs (one more than
# the paper's 5 evaluations), trained in process.
RUN_CONFIG = helpers.tiny_config(network={"actor_depth": 0, "critic_depth": 4}, train={"num_epochs": 6})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("figures") / "run"
    run_training(from_dict(RUN_CONFIG), run)
    return run


@pytest.fixture(scope="module")
def loaded(run_dir):
    return load_run(run_dir)


def test_last5_score_is_the_mean_of_the_last_five_evaluations_of_a_real_run(run_dir):
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert len(metrics) == 6
    runs = collect_runs(run_dir, score="last5")
    row = runs.iloc[0]
    assert row.time_at_goal_last5 == pytest.approx(metrics["eval/time_at_goal"].iloc[1:].mean())
    assert row.success_any_last5 == pytest.approx(metrics["eval/success_any"].iloc[1:].mean())
    assert row.min_dist_last5 == pytest.approx(metrics["eval/min_dist"].iloc[1:].mean())
    assert row.score_epochs == 5 and row.epoch == 6 and "time_at_goal" not in runs
    final = collect_runs(run_dir).iloc[0]
    assert final.time_at_goal == pytest.approx(metrics["eval/time_at_goal"].iloc[-1])


def test_depth_grid_of_a_real_run_puts_it_at_its_actor_and_critic_depth(run_dir):
    runs = collect_runs(run_dir, score="last5")
    (grid,) = depth_grids(aggregate(runs), metric="time_at_goal_last5").values()
    assert grid.env == "point_u_maze" and list(grid.actor_depths) == [0] and list(grid.critic_depths) == [4]
    assert grid.mean[0, 0] == pytest.approx(runs.time_at_goal_last5.iloc[0]) and grid.n_seeds[0, 0] == 1


def test_embeddings_follow_the_evaluation_episodes_of_a_trained_run(loaded):
    cfg, trainer, params = loaded
    emb = embeddings(trainer, params, num_episodes=3)
    steps = cfg.env.episode_length
    assert emb.phi.shape == (3, steps, 2) and emb.psi.shape == (3, 2) and emb.goals.shape == (3, 2)
    assert emb.running.shape == emb.dist.shape == (3, steps) and emb.running.all()  # a point never falls
    assert np.isfinite(emb.phi).all() and np.isfinite(emb.psi).all()
    ratio = emb.explained_variance
    assert ratio.shape == (2,) and 0 < ratio[1] <= ratio[0] and ratio.sum() <= 1 + 1e-9
    # The goals are the eval env's: goal cells' centres plus at most goal_noise x cell per axis.
    env = trainer.eval_env
    centres = env.maze.goal_cells * env.params.cell_size
    offsets = np.abs(emb.goals[:, None, :] - centres[None]).max(axis=-1).min(axis=1)
    assert (offsets <= env.params.goal_noise * env.params.cell_size + 1e-6).all()
    # The same seed draws the same episodes; another seed other ones.
    np.testing.assert_allclose(embeddings(trainer, params, num_episodes=3).phi, emb.phi, rtol=1e-5, atol=1e-5)
    assert not np.allclose(embeddings(trainer, params, num_episodes=3, seed=1).goals, emb.goals)


def test_pca_2d_recovers_a_plane():
    rng = np.random.default_rng(0)
    plane = rng.normal(size=(200, 2)) * [3.0, 1.0]
    basis = np.linalg.qr(rng.normal(size=(5, 2)))[0].T  # two orthonormal directions in 5-D
    mean, components, ratio = pca_2d(plane @ basis + 7.0)
    assert ratio.sum() == pytest.approx(1.0) and ratio[0] > ratio[1] > 0
    np.testing.assert_allclose(np.abs(components @ basis.T), np.eye(2), atol=0.1)


def test_embeddings_need_phi_and_psi(tmp_path):
    cfg = from_dict(helpers.tiny_config(agent={"name": "gcsl"}))
    trainer = Trainer(cfg, *build_envs(cfg))
    with pytest.raises(ValueError, match=r"^embeddings: agent gcsl has no phi\(s, a\) and psi\(g\) encoders") as err:
        embeddings(trainer, trainer.init_params(jax.random.PRNGKey(0)))
    assert "\n" not in str(err.value)


# -- the value map over a locomotion maze -----------------------------------------------------


@pytest.fixture(scope="module")
def ant():
    """A random-init CRL trainer on ant_u4_maze (spring): the module's one Brax build."""
    env = {"id": "ant_u4_maze", "episode_length": 10, "params": {"backend": "spring"}}
    cfg = from_dict(helpers.tiny_config(env=env, network={"depth": 0, "width": 8}))
    env, eval_env = build_envs(cfg)
    trainer = Trainer(cfg, env, eval_env)
    return trainer, trainer.init_params(jax.random.PRNGKey(0))


def test_ant_value_map_masks_walls_and_records_its_reference(ant):
    trainer, params = ant
    env = trainer.eval_env
    cell = env.scene.robot.cell_size
    goal = far_goal(env)  # (4, 1): ten cells from the start (2, 1) along the corridors
    np.testing.assert_allclose(goal, [4 * cell, 1 * cell])
    vm = value_map(trainer, params, env, goal, points_per_cell=2)
    walls = env.maze.walls
    assert walls.shape == (7, 5) and vm.cell_size == cell == 4.0
    assert vm.values.shape == (7 * 2, 5 * 2)
    wall_pixels = np.kron(walls, np.ones((2, 2), bool))
    assert np.isnan(vm.values[wall_pixels]).all() and np.isfinite(vm.values[~wall_pixels]).all()
    assert np.ptp(vm.values[~wall_pixels]) > 0  # the torso's position changes the energy
    assert vm.reference == "the reset pose of ant_u4_maze, key 0, torso moved to (x, y)"
    np.testing.assert_allclose(vm.goal, goal)
    # The grid's first point is the centre of cell (0, 0)'s first quarter: x, y = -cell / 4.
    assert vm.x[0] == vm.y[0] == pytest.approx(-cell / 4)
