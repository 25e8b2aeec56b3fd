"""notebooks/depth_thresholds.ipynb end to end: a tiny point-maze sweep (2 depths x 2
seeds, run by the joblib launcher) and the notebook executed headless on it."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml
from helpers import TINY  # the suite's tiny config

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "depth_thresholds.ipynb"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("notebook")
    sweep_dir = root / "sweep"
    env = {**os.environ, "CRL_JAX_CACHE": str(REPO / ".jax_cache"), "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "crl.apps.train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
         *TINY, "network.depth=0,4", "seed=0,1", f"hydra.sweep.dir={sweep_dir}"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    return sweep_dir, result


def test_joblib_launcher_ran_every_job_of_the_sweep(sweep):
    sweep_dir, result = sweep
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib" in result.stdout + result.stderr  # the launcher Hydra reports using
    from crl.apps.collect import collect_runs

    runs = collect_runs(sweep_dir)
    assert sorted(zip(runs.critic_depth, runs.seed)) == [(0, 0), (0, 1), (4, 0), (4, 1)]
    assert runs.complete.all()


def add_wide_runs(sweep_dir: pathlib.Path, target: pathlib.Path, width: int = 32) -> pathlib.Path:
    """A copy of the sweep plus its depth-0 runs relabelled as width-`width` runs (the
    width-versus-depth plot needs a second width; training more runs would cost minutes)."""
    shutil.copytree(sweep_dir, target)
    for run in sorted(target.glob("*_a0_c0_w16_*")):
        wide = run.with_name("9" + run.name.replace("_w16_", f"_w{width}_"))
        shutil.copytree(run, wide)
        cfg = yaml.safe_load((wide / "config.yaml").read_text())
        cfg["network"].update(width=width, actor_width=width, critic_width=width)
        (wide / "config.yaml").write_text(yaml.safe_dump(cfg))
        info = json.loads((wide / "run_info.json").read_text())
        info.update(actor_params=info["actor_params"] * 3, critic_params=info["critic_params"] * 3)
        (wide / "run_info.json").write_text(json.dumps(info))
    return target


def add_mixed_depth_runs(sweep_dir: pathlib.Path) -> None:
    """The depth-4 runs' metrics relabelled as actor depth 0, critic depth 4 (the actor x
    critic depth grid needs runs whose depths differ; their parameters are never loaded)."""
    for run in sorted(sweep_dir.glob("*_a4_c4_w16_*")):
        mixed = run.with_name("8" + run.name.replace("_a4_c4_", "_a0_c4_"))
        shutil.copytree(run, mixed)
        (mixed / "params.msgpack").unlink()
        cfg = yaml.safe_load((mixed / "config.yaml").read_text())
        cfg["network"].update(actor_depth=0)
        (mixed / "config.yaml").write_text(yaml.safe_dump(cfg))


def test_notebook_runs_headless_and_writes_its_figures(sweep, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    sweep_dir, result = sweep
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = add_wide_runs(sweep_dir, tmp_path / "sweep")
    add_mixed_depth_runs(sweep_dir)
    out_dir = tmp_path / "figures"
    monkeypatch.setenv("SWEEP_DIR", str(sweep_dir))
    monkeypatch.setenv("OUT_DIR", str(out_dir))
    monkeypatch.setenv("CRL_JAX_CACHE", str(REPO / ".jax_cache"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel inherits this process's environment (SWEEP_DIR, OUT_DIR).
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()

    for name in ("time_at_goal_vs_depth.png", "learning_curves.png", "width_vs_depth.png", "value_map.png",
                 "actor_vs_critic_depth.png", "embeddings.png", "interval_estimates.png", "performance_profile.png"):
        path = out_dir / name
        assert path.is_file() and path.stat().st_size > 5000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
    )
    assert "8 runs, 4 configurations, tasks: point_u_maze" in text
    # Our point-maze runs (train.sgd_schedule=ratio) are scored by their final evaluation.
    assert "score: final (final evaluation; auto: not every run trained with the paper's protocol" in text
    # IQM with its CI per depth over the tasks' normalised scores (2 seeds per depth)
    assert "normalised time_at_goal (final evaluation; episode), per depth over 1 task(s):" in text
    assert text.count("IQM ") >= 2 and "(2 runs)" in text
