"""Agents: each is its networks, losses and learner in a package of its own (the shape of
Brax's training/agents/<name>/); the trainer (crl/train.py), the buffer, the loop,
checkpoints, evaluation and the tools are shared and call only the interface below.

    crl    contrastive RL, the paper's method (its settings are train.energy, ...)
    sac    SAC: twin Q, Polyak target networks, automatic entropy tuning; agent.her=true: SAC+HER
    td3    TD3: deterministic actor, target-policy smoothing, delayed actor updates; agent.her
    gcsl   GCSL: iterated goal-conditioned behaviour cloning of its own relabelled data
    gcbc   GCBC: goal-conditioned behaviour cloning of fixed data (train.dataset only)

Each package's `__init__` holds its settings (`Config`, a frozen dataclass whose fields are
`agent.*` on the command line; `name` is the agent's name), `OWN_TRAIN_KEYS` (the train.*
keys only it reads), optionally `OFFLINE_ONLY = True` (it needs train.dataset), and
nothing heavy; its
`learner.make(cfg, env)` builds the agent, an object with:

    name, config                 its name and settings
    relabelling                  which goals its batches carry (crl.buffer.Relabelling)
    init_params(key)             fresh parameters in params.msgpack's layout: {"actor": ..., ...}
    init_learner(key, params=None)  its learning state: a dict of Flax TrainStates ("actor"
                                 always) and target parameters; from `params` (init_params'
                                 layout, e.g. another run's) with fresh optimiser states if given
    params(learner)              the learner's parameters in init_params' layout
    explore(actor_params, state, goal, key)  the acting policy while collecting
    act(actor_params, state, goal)           the evaluation policy (deterministic)
    update(learner, batch, key) -> (learner, metrics)   one SGD step on a sampled batch

Facts each agent follows, with sources: docs/agents.md.
"""

from __future__ import annotations

import dataclasses
import importlib

from crl.config_tree import ConfigError, build

AGENTS = ("crl", "sac", "td3", "gcsl", "gcbc")
DEFAULT = "crl"


def _check_name(name) -> str:
    if name not in AGENTS:
        raise ConfigError(f"agent.name: {name!r} is not allowed; use one of {', '.join(AGENTS)} (agent=<name>)")
    return name


def config_class(name: str):
    """The settings dataclass of agent `name`."""
    return importlib.import_module(f"crl.agents.{_check_name(name)}").Config


def build_config(data) -> object:
    """A nested dict {"name": ..., key: value} -> that agent's settings; an unknown name or a
    key the agent does not have is a one-line ConfigError."""
    if dataclasses.is_dataclass(data):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"agent: {data!r} is not allowed; use agent=<name> with one of {', '.join(AGENTS)}")
    name = _check_name(data.get("name", DEFAULT))
    cls = config_class(name)
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"agent.{unknown[0]}: not a setting of agent {name}; its settings: {', '.join(fields)}"
        )
    built = build(cls, data, "agent")
    built.check()
    return built


def own_train_keys(name: str) -> tuple[str, ...]:
    """The train.* keys only agent `name` reads (another agent refuses them at a non-default value)."""
    return importlib.import_module(f"crl.agents.{_check_name(name)}").OWN_TRAIN_KEYS


def offline_only(name: str) -> bool:
    """Whether agent `name` learns only from fixed data (train.dataset)."""
    return getattr(importlib.import_module(f"crl.agents.{_check_name(name)}"), "OFFLINE_ONLY", False)


def make(cfg, env):
    """The agent `cfg.agent` names, for `env` (a GoalEnv: its sizes)."""
    return importlib.import_module(f"crl.agents.{_check_name(cfg.agent.name)}.learner").make(cfg, env)
