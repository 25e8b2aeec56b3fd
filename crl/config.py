"""Plain dataclasses for a run's configuration, built from a nested dict and validated.

The library takes a `Config`; the Hydra entry point only turns its composed config into
a dict. Every check raises `ConfigError` with one line: the key, the value given and
what is allowed. All checks run before anything is compiled or written.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import pathlib
from typing import Any

import jax

from crl import agents
from crl.agents import crl as crl_agent
from crl.buffer import SAMPLINGS
from crl.config_tree import ConfigError, build, default_tree  # noqa: F401  ConfigError, default_tree: re-exported
from crl.dataset import check_path as check_dataset_path
from crl.agents.crl.losses import CONTRASTIVE_LOSSES, ENERGIES
from crl.networks import ACTIVATIONS, COMPUTE_DTYPES, LOG_PROBS, MLPConfig
from envs.wrappers import RESET_MODES

# How many SGD steps an update phase runs and how many phases an epoch has (Config.schedule):
#   ratio  ours: round(utd_ratio x env steps per phase); total_env_steps counts training only
#   paper  the paper's code: min(sgd_steps_cap, floor(num_envs x (episode_length - 1) / batch_size));
#          total_env_steps includes the prefill
SGD_SCHEDULES = ("ratio", "paper")
PREFILL_POLICIES = ("random", "actor")  # uniform random actions (ours) | the untrained stochastic actor (paper)
UPDATE_ORDERS = ("critic_first", "actor_first")  # ours | the paper's: actor and alpha against the current critic

WANDB_MODES = ("auto", "online", "offline")


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    id: str = "point_u_maze"
    eval_id: str | None = None
    episode_length: int = 100
    params: dict = dataclasses.field(default_factory=dict)
    eval_params: dict = dataclasses.field(default_factory=dict)  # the eval env's params that differ from `params`


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Residual MLPs (Dense -> LayerNorm -> Swish blocks) of the actor and the critic.

    `depth` counts the Dense layers inside residual blocks (a multiple of 4; 0 = none).
    `depth`/`width` set actor and critic together; an `actor_*`/`critic_*` key left at None
    takes that value (resolved here, so Python and the command line derive alike).
    """

    depth: int = 4
    width: int = 256
    actor_depth: int | None = None  # None: network.depth
    critic_depth: int | None = None
    actor_width: int | None = None  # None: network.width
    critic_width: int | None = None
    repr_dim: int = 64  # output size of the critic's phi(s, a) and psi(g)
    activation: str = "swish"  # see networks.ACTIVATIONS
    layer_norm: bool = True
    residual: bool = True
    scan_blocks: bool = True  # stack blocks with nn.scan (compile time independent of depth)
    remat: bool = False  # rematerialise each block in the backward pass (saves memory)
    dtype: str = "float32"  # matmul dtype; bfloat16 = mixed precision (float32 params and losses)
    log_prob: str = "exact"  # the actor's tanh Jacobian: exact | paper, log(1 - tanh(u)^2 + 1e-6) (networks.LOG_PROBS)
    reinit_last_layers: int = 0  # with train.init_from: draw the last N Dense layers of every network afresh

    def __post_init__(self):
        # Note: dataclasses.replace(net, depth=...) keeps the already-resolved role values.
        for role in ("actor", "critic"):
            for size in ("depth", "width"):
                if getattr(self, f"{role}_{size}") is None:
                    object.__setattr__(self, f"{role}_{size}", getattr(self, size))

    def mlp(self, role: str) -> MLPConfig:
        """The residual-MLP settings of the 'actor' or the 'critic'."""
        return MLPConfig(
            depth=getattr(self, f"{role}_depth"),
            width=getattr(self, f"{role}_width"),
            activation=self.activation,
            layer_norm=self.layer_norm,
            residual=self.residual,
            scan_blocks=self.scan_blocks,
            remat=self.remat,
            dtype=COMPUTE_DTYPES[self.dtype],
        )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Trainer defaults, sized for the embedded point-maze task on a CPU. The paper's values
    (512 envs, batch 512, 62-step unrolls, 1000-step episodes) are set by the Brax/MJX
    task configs in conf/env/."""

    num_envs: int = 64
    num_seeds: int = 1  # seeds seed .. seed + num_seeds - 1 in one program, a run dir each (crl/seeds.py)
    total_env_steps: int = 64_000  # env steps of training, after the prefill
    num_epochs: int = 10  # evaluations (and log rows) over the run
    unroll_length: int = 50  # steps per env between update phases
    prefill_steps: int = 100  # steps per env of random actions before training
    utd_ratio: float = 0.03125  # SGD steps per collected env step (paper: about 1/40)
    batch_size: int = 256
    buffer_size: int = 2000  # steps per env kept in the replay buffer
    discount: float = 0.99  # gamma of the future-goal offset distribution
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    energy: str = "l2"  # see losses.ENERGIES
    contrastive_loss: str = "forward"  # see losses.CONTRASTIVE_LOSSES
    logsumexp_penalty: float = 0.1
    target_entropy_scale: float = -0.5  # target entropy = scale * action_dim
    num_eval_envs: int = 128
    # The update schedule and the data pipeline: ours (these defaults) or the paper's code
    # (set by the paper's task configs, conf/env/{ant,humanoid,arm}_*.yaml; docs/paper_fidelity.md).
    sgd_schedule: str = "ratio"  # ratio: round(utd_ratio x env steps) per phase | paper: see SGD_SCHEDULES
    sgd_steps_cap: int = 800  # the paper's cap on SGD steps per update phase (sgd_schedule=paper)
    reset_mode: str = "fresh"  # fresh: new start and goal per episode | first: the slot's first ones (Brax)
    prefill_policy: str = "random"  # random: uniform actions | actor: the untrained stochastic actor
    sampling: str = "uniform"  # uniform: any stored step per SGD step | window: one episode-length
    #                            window per env per update phase, batches without replacement
    update_order: str = "critic_first"  # critic_first: the actor steps against the updated critic | actor_first
    # Offline training and learners that do not act (docs/offline.md):
    dataset: str | None = None  # train from fixed data, never stepping the training env: a run dir of
    #                             ours (its newest checkpoint's buffer) or an OGBench-layout .npz (crl/dataset.py)
    init_from: str | None = None  # start from another run's params.msgpack (fresh optimiser state)
    learner_depths: list = dataclasses.field(default_factory=list)  # learners of these depths (actor and
    #                             critic) train on every batch the run samples, without acting; evaluated
    #                             and logged as eval/depth_<d>/..., train/depth_<d>/...

    def __post_init__(self):
        # the fixed data and the start parameters by absolute path: a resume from elsewhere finds them
        for name in ("dataset", "init_from"):
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, str(pathlib.Path(getattr(self, name)).expanduser().absolute()))

    @property
    def env_steps_per_training_step(self) -> int:
        return self.num_envs * self.unroll_length

    @property
    def prefill_unrolls(self) -> int:
        return math.ceil(self.prefill_steps / self.unroll_length)


@dataclasses.dataclass(frozen=True)
class LoggingConfig:
    tensorboard: bool = True
    csv: bool = True
    progress_bar: bool = True
    save_params: bool = True  # write params.msgpack (actor and critic) at the end
    wandb: bool = False  # also log to Weights & Biases (pip install -e ".[wandb]")
    wandb_project: str = "deep-crl"
    wandb_mode: str = "auto"  # auto (online with WANDB_API_KEY, else offline) | online | offline


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """Checkpoints of the whole training state in <run dir>/checkpoints/ (orbax, atomic);
    re-running the same command with the same run dir (or `crl-train resume=<run dir>`)
    resumes from the newest intact one."""

    every_epochs: int = 1  # also saved at the end and on Ctrl-C / SIGTERM / SIGUSR1 / SIGUSR2
    keep: int = 2  # complete checkpoints kept (older ones are deleted)
    include_buffer: bool = True  # without it a resume refills the buffer and is not exact
    restart: bool = False  # a run dir whose checkpoints are gone: train it again from scratch (deletes its
    #                        metrics); where checkpoints exist the run resumes, so a requeue never loses progress


@dataclasses.dataclass(frozen=True)
class VideoConfig:
    """Rollout videos of the deterministic policy written during training."""

    enabled: bool = False  # write <run dir>/videos/final.mp4 at the end of training
    episodes: int = 2
    every_epochs: int = 0  # 0: only at the end; N: also after every N-th epoch
    width: int = 480
    height: int = 480


@dataclasses.dataclass(frozen=True)
class Config:
    # The agent's own settings (`agent=<name>` on the command line, then `agent.<key>=...`):
    # the dataclass `crl.agents.<name>.Config`; a dict {"name": ..., ...} is built into it.
    agent: Any = dataclasses.field(default_factory=crl_agent.Config)
    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    video: VideoConfig = dataclasses.field(default_factory=VideoConfig)
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "agent", agents.build_config(self.agent))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def offline(self) -> bool:
        """Training from fixed data (`train.dataset`): no env steps, no prefill."""
        return self.train.dataset is not None

    @property
    def env_steps_per_phase(self) -> int:
        """Env steps one update phase takes: an unroll of all envs online, none offline."""
        return 0 if self.offline else self.train.env_steps_per_training_step

    @property
    def step_counter(self) -> str:
        """The counter TensorBoard's x axis shows: env steps online, SGD steps offline."""
        return "sgd_steps" if self.offline else "env_steps"

    def learner_names(self) -> list[str]:
        """The names of `train.learner_depths`' learners (`depth_<d>`), in order."""
        return [f"depth_{d}" for d in self.train.learner_depths]

    # The schedule needs the episode length (the paper's rule), so it lives here, not on TrainConfig.

    @property
    def sgd_steps_per_training_step(self) -> int:
        """SGD steps per update phase (one phase = one unroll of all envs, then its SGD steps)."""
        t = self.train
        if t.sgd_schedule == "paper":
            # the transitions of one window per env, cut into whole batches, at most the cap
            return min(t.sgd_steps_cap, t.num_envs * (self.env.episode_length - 1) // t.batch_size)
        return max(1, round(t.utd_ratio * t.env_steps_per_training_step))

    @property
    def training_steps_per_epoch(self) -> int:
        """Update phases per epoch."""
        t = self.train
        if t.sgd_schedule == "paper":
            return (t.total_env_steps - t.prefill_steps * t.num_envs) // (t.num_epochs * t.env_steps_per_training_step)
        return max(1, math.ceil(t.total_env_steps / t.num_epochs / t.env_steps_per_training_step))

    @property
    def first_checkpoint_epoch(self) -> int:
        """The first epoch after which a run saves a checkpoint."""
        return min(self.checkpoint.every_epochs, self.train.num_epochs)

    def schedule(self) -> dict:
        """The schedule and data pipeline a run uses, with the resulting numbers (run_info.json)."""
        t = self.train
        phases = self.training_steps_per_epoch
        return {
            "sgd_schedule": t.sgd_schedule,
            "sgd_steps_per_training_step": self.sgd_steps_per_training_step,
            "training_steps_per_epoch": phases,
            "training_steps": phases * t.num_epochs,
            "env_steps_per_epoch": phases * self.env_steps_per_phase,
            "prefill_env_steps": 0 if self.offline else t.prefill_unrolls * t.env_steps_per_training_step,
            "offline": self.offline,
            "learners": self.learner_names(),
            "reset_mode": t.reset_mode,
            "prefill_policy": t.prefill_policy,
            "sampling": t.sampling,
            "update_order": t.update_order,
        }


def from_dict(data: dict) -> Config:
    """Nested dict (e.g. a resolved Hydra config) -> validated Config."""
    data = {k: v for k, v in data.items() if k != "hydra"}
    cfg = build(Config, data, "")
    validate(cfg)
    return cfg


# -- checks that need no env -------------------------------------------------------------


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {value!r} is not allowed; {allowed}")


def validate(cfg: Config) -> None:
    n, t = cfg.network, cfg.train
    defaults = TrainConfig()
    for other in agents.AGENTS:
        if other == cfg.agent.name:
            continue
        for key in agents.own_train_keys(other):
            _check(
                getattr(t, key) == getattr(defaults, key), f"train.{key}", getattr(t, key),
                f"only agent {other} uses it; agent {cfg.agent.name} does not (leave it at {getattr(defaults, key)!r})",
            )
    _check(n.depth >= 0 and n.depth % 4 == 0, "network.depth", n.depth, "use a multiple of 4 (0, 4, 8, ..., 1024)")
    _check(n.width >= 1, "network.width", n.width, "use a positive integer")
    for role in ("actor", "critic"):
        d, w = getattr(n, f"{role}_depth"), getattr(n, f"{role}_width")
        _check(d >= 0 and d % 4 == 0, f"network.{role}_depth", d, "use a multiple of 4 (0, 4, 8, ..., 1024)")
        _check(w >= 1, f"network.{role}_width", w, "use a positive integer")
    _check(n.repr_dim >= 1, "network.repr_dim", n.repr_dim, "use a positive integer")
    _check(n.activation in ACTIVATIONS, "network.activation", n.activation, f"use one of {', '.join(ACTIVATIONS)}")
    _check(n.dtype in COMPUTE_DTYPES, "network.dtype", n.dtype, f"use one of {', '.join(COMPUTE_DTYPES)}")
    _check(n.log_prob in LOG_PROBS, "network.log_prob", n.log_prob, f"use one of {', '.join(LOG_PROBS)}")
    _check(t.energy in ENERGIES, "train.energy", t.energy, f"use one of {', '.join(ENERGIES)}")
    _check(
        t.contrastive_loss in CONTRASTIVE_LOSSES, "train.contrastive_loss", t.contrastive_loss,
        f"use one of {', '.join(CONTRASTIVE_LOSSES)}",
    )
    for name in ("num_envs", "num_seeds", "total_env_steps", "num_epochs", "unroll_length", "batch_size", "buffer_size", "num_eval_envs"):
        _check(getattr(t, name) >= 1, f"train.{name}", getattr(t, name), "use a positive integer")
    _check(t.prefill_steps >= 0, "train.prefill_steps", t.prefill_steps, "use an integer >= 0")
    _check(
        t.num_seeds == 1 or not cfg.logging.wandb, "logging.wandb", cfg.logging.wandb,
        "use false with train.num_seeds > 1 (one W&B run per process: sweep over seed instead)",
    )
    _check(0.0 < t.discount < 1.0, "train.discount", t.discount, "use a number in (0, 1)")
    for name in ("actor_lr", "critic_lr", "alpha_lr"):
        _check(getattr(t, name) > 0, f"train.{name}", getattr(t, name), "use a positive number")
    _check(t.utd_ratio > 0, "train.utd_ratio", t.utd_ratio, "use a positive number (SGD steps per env step)")
    _check(t.logsumexp_penalty >= 0, "train.logsumexp_penalty", t.logsumexp_penalty, "use a number >= 0")
    _check(t.batch_size >= 2, "train.batch_size", t.batch_size, "use at least 2 (InfoNCE needs negatives)")
    _check(
        t.buffer_size >= t.unroll_length, "train.buffer_size", t.buffer_size,
        f"use at least train.unroll_length ({t.unroll_length})",
    )
    _check(cfg.env.episode_length >= 2, "env.episode_length", cfg.env.episode_length, "use an integer >= 2")
    _check(
        t.buffer_size > cfg.env.episode_length + t.unroll_length, "train.buffer_size", t.buffer_size,
        f"use more than env.episode_length + train.unroll_length ({cfg.env.episode_length + t.unroll_length}) "
        "so relabelling can tell the newest episode from the oldest",
    )
    for name, value, allowed in (
        ("sgd_schedule", t.sgd_schedule, SGD_SCHEDULES), ("reset_mode", t.reset_mode, RESET_MODES),
        ("prefill_policy", t.prefill_policy, PREFILL_POLICIES), ("sampling", t.sampling, SAMPLINGS),
        ("update_order", t.update_order, UPDATE_ORDERS),
    ):
        _check(value in allowed, f"train.{name}", value, f"use one of {', '.join(allowed)}")
    _check(t.sgd_steps_cap >= 1, "train.sgd_steps_cap", t.sgd_steps_cap, "use a positive integer")
    one_epoch = t.num_epochs * t.env_steps_per_training_step
    if t.sgd_schedule == "paper":
        _check(
            t.total_env_steps >= t.prefill_steps * t.num_envs + one_epoch, "train.total_env_steps", t.total_env_steps,
            f"use at least train.prefill_steps x train.num_envs + train.num_epochs x train.num_envs x "
            f"train.unroll_length ({t.prefill_steps * t.num_envs + one_epoch}) with train.sgd_schedule=paper "
            "(its total includes the prefill) so every epoch trains",
        )
        window_rows = t.num_envs * (cfg.env.episode_length - 1)
        _check(
            t.batch_size <= window_rows, "train.batch_size", t.batch_size,
            f"use at most train.num_envs x (env.episode_length - 1) ({window_rows}) with train.sgd_schedule=paper",
        )
    else:
        _check(
            t.total_env_steps >= one_epoch, "train.total_env_steps", t.total_env_steps,
            f"use at least train.num_epochs x train.num_envs x train.unroll_length ({one_epoch}) so every epoch trains",
        )
    first_batch_rows = (t.prefill_unrolls + 1) * t.env_steps_per_training_step
    _check(
        cfg.offline or t.batch_size <= first_batch_rows, "train.batch_size", t.batch_size,
        f"use at most the env steps stored before the first update ({first_batch_rows}); "
        "or raise train.prefill_steps",
    )
    _validate_offline(cfg)
    lg = cfg.logging
    _check(lg.wandb_mode in WANDB_MODES, "logging.wandb_mode", lg.wandb_mode, f"use one of {', '.join(WANDB_MODES)}")
    _check(
        not lg.wandb or importlib.util.find_spec("wandb") is not None, "logging.wandb", lg.wandb,
        "the wandb package is not installed; pip install -e \".[wandb]\" or set logging.wandb=false",
    )
    if t.sampling == "window":
        _check(
            first_batch_rows // t.num_envs > cfg.env.episode_length, "train.prefill_steps", t.prefill_steps,
            f"use enough that more than env.episode_length ({cfg.env.episode_length}) steps per env are stored "
            f"before the first update with train.sampling=window (stored: {first_batch_rows // t.num_envs})",
        )
        window_rows = t.num_envs * (cfg.env.episode_length - 1)
        _check(
            cfg.sgd_steps_per_training_step * t.batch_size <= window_rows, "train.batch_size", t.batch_size,
            f"use SGD steps per update phase ({cfg.sgd_steps_per_training_step}) x train.batch_size at most "
            f"train.num_envs x (env.episode_length - 1) ({window_rows}) with train.sampling=window "
            "(batches are drawn without replacement); or lower train.utd_ratio",
        )
    c = cfg.checkpoint
    _check(c.every_epochs >= 1, "checkpoint.every_epochs", c.every_epochs, "use a positive integer")
    _check(c.keep >= 1, "checkpoint.keep", c.keep, "use a positive integer")
    v = cfg.video
    _check(v.episodes >= 1, "video.episodes", v.episodes, "use a positive integer")
    _check(v.every_epochs >= 0, "video.every_epochs", v.every_epochs, "use 0 (only at the end) or a positive integer")
    _check(min(v.width, v.height) >= 16, "video.width", f"{v.width}x{v.height}", "use at least 16 x 16")
    _check(cfg.seed >= 0, "seed", cfg.seed, "use an integer >= 0")


def _validate_offline(cfg: Config) -> None:
    """train.dataset, train.init_from, train.learner_depths, network.reinit_last_layers."""
    t, n = cfg.train, cfg.network
    if t.dataset is not None:
        check_dataset_path(t.dataset)
        _check(t.sampling == "uniform", "train.sampling", t.sampling,
               "use uniform with train.dataset (an offline buffer is not laid out one column per env)")
    _check(
        t.dataset is not None or not agents.offline_only(cfg.agent.name), "train.dataset", t.dataset,
        f"agent {cfg.agent.name} learns from fixed data only: set train.dataset=<run dir|file.npz> "
        "(online, iterated behaviour cloning of the agent's own data is agent=gcsl)",
    )
    if t.init_from is not None:
        params = pathlib.Path(t.init_from).expanduser() / "params.msgpack"
        _check(params.is_file(), "train.init_from", t.init_from,
               "give the directory of a finished run (it holds params.msgpack)")
    _check(n.reinit_last_layers >= 0, "network.reinit_last_layers", n.reinit_last_layers, "use an integer >= 0")
    most = min(n.actor_depth, n.critic_depth) + 2  # the Dense layers of the shallower network
    _check(n.reinit_last_layers <= most, "network.reinit_last_layers", n.reinit_last_layers,
           f"use at most {most} (the Dense layers of the shallower network: depth + input + head)")
    _check(n.reinit_last_layers == 0 or t.init_from is not None, "network.reinit_last_layers", n.reinit_last_layers,
           "it cold-starts layers of loaded parameters: set train.init_from=<run dir> too, or use 0")
    depths = t.learner_depths
    _check(isinstance(depths, (list, tuple)) and all(isinstance(d, int) and not isinstance(d, bool) for d in depths),
           "train.learner_depths", depths, "use a list of depths, e.g. [4,16]")
    for d in depths:
        _check(d >= 0 and d % 4 == 0, "train.learner_depths", depths, "use multiples of 4 (0, 4, 8, ..., 1024)")
    _check(len(set(depths)) == len(depths), "train.learner_depths", depths, "use each depth once")


def validate_with_env(cfg: Config, spec) -> None:
    """Checks that need the env's facts (its EnvSpec) or the devices. Called once the env
    is built: `validate` must not start jax's backend, because an env family may set XLA
    flags when it is first imported (envs/manipulation/xla_flags.py)."""
    bad = [i for i in spec.goal_indices if not 0 <= i < spec.state_dim]
    _check(
        not bad, "env.id", cfg.env.id,
        f"its goal indices {list(spec.goal_indices)} must lie inside its state of size {spec.state_dim}",
    )
    t = cfg.train
    try:
        devices = jax.local_device_count()
    except Exception:  # pragma: no cover - no backend at all
        devices = 1
    _check(
        t.num_envs % devices == 0, "train.num_envs", t.num_envs,
        f"use a multiple of the number of local devices ({devices})",
    )
    _check(
        t.batch_size % devices == 0, "train.batch_size", t.batch_size,
        f"use a multiple of the number of local devices ({devices})",
    )
