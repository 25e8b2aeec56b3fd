"""Training-loop callbacks that need application libraries: the tqdm progress bar,
rollout videos (MuJoCo, imageio) and Weights & Biases. The library's own callbacks
(metrics files, guard, checkpoints, signals, params) are in crl/callbacks.py.

    callbacks = app_callbacks(cfg, run_dir)     # what cfg.logging / cfg.video ask for
    run_training(cfg, run_dir, callbacks=callbacks)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib

import jax
from tqdm import tqdm

from crl.apps.render import render_run_video
from crl.config import Config
from crl.loop import Callback, Progress
from envs.mujoco_draw import as_gl_error

log = logging.getLogger(__name__)


class ProgressBar(Callback):
    """One tick per epoch, with env steps, env steps/s and the latest time at goal."""

    def __init__(self, desc: str):
        self.desc = desc
        self.bar = None

    def on_start(self, trainer, start_epoch: int, num_epochs: int) -> None:
        self.bar = tqdm(total=num_epochs, initial=start_epoch, desc=self.desc, unit="epoch", dynamic_ncols=True)

    def on_epoch(self, progress: Progress) -> None:
        row = progress.metrics
        self.bar.set_postfix(
            env_steps=row["env_steps"],
            sps=f"{row['train/env_steps_per_second']:.0f}",
            time_at_goal=f"{row['eval/time_at_goal']:.1f}",
        )
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Videos(Callback):
    """videos/epoch_NNNNNN.mp4 every `every_epochs` epochs (0: never) and videos/final.mp4
    when the run finishes. A failed video is logged and never costs the run; without an
    OpenGL backend (MuJoCo tasks) that is logged once, in one line, and no video is tried again."""

    def __init__(self, cfg: Config, run_dir: pathlib.Path):
        self.cfg = cfg
        self.run_dir = pathlib.Path(run_dir)
        self.trainer = None
        self.no_gl: str | None = None  # why videos are off: no GL backend

    def on_start(self, trainer, start_epoch: int, num_epochs: int) -> None:
        self.trainer = trainer

    def on_epoch(self, progress: Progress) -> None:
        every = self.cfg.video.every_epochs
        if every and progress.epoch % every == 0:
            self._write(progress.state, f"epoch_{progress.epoch:06d}.mp4")

    def on_end(self, state, progress: Progress | None) -> None:
        if progress is not None and progress.done:
            self._write(state, "final.mp4")

    def _write(self, state, name: str) -> None:
        if self.no_gl is not None:
            return
        v = self.cfg.video
        try:
            info = render_run_video(
                self.run_dir, self.cfg, jax.device_get(self.trainer.params(state)), v.episodes,
                pathlib.Path("videos") / name, trainer=self.trainer, width=v.width, height=v.height, seed=self.cfg.seed,
            )
            log.info("video: %s (%d frames)", info["video"], info["frames"])
        except Exception as err:  # a video must never cost the run
            gl_error = as_gl_error(err)
            if gl_error is not None:
                self.no_gl = str(gl_error)
                log.warning("videos off for this run: %s", gl_error)
            else:
                log.warning("video %s failed: %s: %s", name, err.__class__.__name__, err)


class WandbLogger(Callback):
    """Every epoch's row to Weights & Biases (x axis: env steps), in <run dir>/wandb/.

    Mode `auto` logs online when an API key is configured (WANDB_API_KEY) and offline
    otherwise; an offline run is uploaded later with `wandb sync <run dir>/wandb/offline-run-*`.
    The W&B run id is derived from the run dir, so a resumed run continues the same W&B run."""

    def __init__(self, cfg: Config, run_dir: pathlib.Path):
        self.cfg = cfg
        self.run_dir = pathlib.Path(run_dir)
        self.run = None

    @staticmethod
    def mode(setting: str) -> str:
        if setting == "auto":
            return "online" if os.environ.get("WANDB_API_KEY") else "offline"
        return setting

    def on_start(self, trainer, start_epoch: int, num_epochs: int) -> None:
        import wandb  # lazy: an optional dependency (pip install -e ".[wandb]")

        (self.run_dir / "wandb").mkdir(parents=True, exist_ok=True)
        run_id = hashlib.sha1(str(self.run_dir.resolve()).encode()).hexdigest()[:16]
        self.run = wandb.init(
            project=self.cfg.logging.wandb_project, dir=str(self.run_dir), id=run_id, resume="allow",
            name=self.run_dir.name, mode=self.mode(self.cfg.logging.wandb_mode),
            config=json.loads(json.dumps(self.cfg.to_dict())),
        )

    def on_epoch(self, progress: Progress) -> None:
        self.run.log(dict(progress.metrics), step=int(progress.metrics["env_steps"]))

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def app_callbacks(cfg: Config, run_dir: pathlib.Path, progress_bar: bool = True, label: str = "") -> list[Callback]:
    """The callbacks `crl-train` adds to the library's own, as the config asks (a batched
    run's seeds: one progress bar, on its first seed, `label` naming it)."""
    callbacks: list[Callback] = []
    if cfg.logging.progress_bar and progress_bar:
        callbacks.append(ProgressBar(f"{cfg.env.id}{label}"))
    if cfg.logging.wandb:
        callbacks.append(WandbLogger(cfg, run_dir))
    if cfg.video.enabled:
        callbacks.append(Videos(cfg, run_dir))
    return callbacks
