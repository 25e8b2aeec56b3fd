"""crl-train's command line checked before Hydra runs anything: every job of a command is
composed and validated first, and Hydra's own errors become one line.

    jobs = compose_jobs(conf_dir, ["network.depth=4,8", "seed=0"], multirun=True)
    # -> [Job(index=0, overrides=[...], cfg=Config), Job(index=1, ...)]

A bad override (an unknown group option, an unknown key without `+`, a malformed value)
or a bad value in any job raises `ConfigError` with one line naming the override or the
job, before the first job trains and before Hydra writes a run directory.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import typing

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import OmegaConf

import envs.registry
from crl import agents
from crl.config import Config, ConfigError, from_dict
from crl.run import build_envs


@dataclasses.dataclass
class Job:
    index: int  # Hydra's job number (hydra.job.num) in a multirun
    overrides: list[str]
    cfg: Config | None
    varying: tuple[str, ...] = ()  # the overrides that tell this job from the others

    def describe(self) -> str:
        return f"job {self.index} ({' '.join(self.varying or self.overrides)})"


def _sections() -> dict[str, list[str]]:
    hints = typing.get_type_hints(Config)
    return {name: [g.name for g in dataclasses.fields(kind)] if dataclasses.is_dataclass(kind) else []
            for name, kind in hints.items()}


def hydra_error_line(err: Exception, overrides: list[str]) -> str:
    """One line for an error Hydra raises while parsing or composing."""
    text = str(err)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(err, OverrideParseException):
        m = re.search(r"Error parsing override '(.*)'", text)
        detail = lines[1] if len(lines) > 1 else ""
        detail = detail.split(" expecting ")[0]
        return f"malformed override {m.group(1) if m else '?'!r}" + (f": {detail}" if detail else "")
    if isinstance(err, MissingConfigException):
        m = re.search(r"Could not find '([^']*)/([^']*)'", text)
        if m:
            group, name = m.groups()
            listed = text.split(f"Available options in '{group}':", 1)[-1].split("Config search path", 1)[0]
            options = listed.split()
            given = next((o for o in overrides if o.lstrip("+~").split("=", 1)[0] == group), f"{group}={name}")
            allowed = f"choose one of {', '.join(options)}" if options else "no options exist"
            return f"{given}: no such {group} config; {allowed}"
    m = re.search(r"Could not (?:override|append to) '([^']*)'", text)
    if m:
        key = m.group(1)
        section, _, leaf = key.rpartition(".")
        sections = _sections()
        given = next((o for o in overrides if o.lstrip("+~").split("=", 1)[0] == key), key)
        if section == "agent":
            name = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == "agent"), agents.DEFAULT)
            if name in agents.AGENTS:
                fields = [f.name for f in dataclasses.fields(agents.config_class(name))]
                return f"{key}: not a setting of agent {name} (in {given!r}); its settings: {', '.join(fields)}"
        if section in sections and sections[section]:
            return f"{key}: unknown key (in {given!r}); allowed keys here: {', '.join(sections[section])}"
        if not section and key not in sections:
            return f"{key}: unknown key (in {given!r}); allowed keys here: {', '.join(sections)}"
        return f"{given!r}: {lines[-1] if lines else text}"
    return lines[0] if lines else err.__class__.__name__


def _compose(conf_dir: str, overrides: list[str]):
    try:
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except HydraException as err:
        raise ConfigError(hydra_error_line(err, overrides)) from None


def _job_overrides(conf_dir: str, argv: list[str], multirun: bool) -> list[list[str]]:
    try:
        parsed = OverridesParser.create().parse_overrides(argv)
    except HydraException as err:
        raise ConfigError(hydra_error_line(err, argv)) from None
    if not multirun:
        return [list(argv)]
    fixed = [a for a, o in zip(argv, parsed) if not o.is_sweep_override()]
    base = _compose(conf_dir, fixed)
    params = OmegaConf.select(base, "hydra.sweeper.params") or {}
    preset = [f"{k}={v}" for k, v in params.items()]
    try:
        batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(preset + argv), None)
    except HydraException as err:
        raise ConfigError(hydra_error_line(err, preset + argv)) from None
    return batches[0]


def compose_jobs(conf_dir: str, argv: list[str], multirun: bool) -> list[Job]:
    """Every job of the command, composed and validated; in a multirun each job's env is
    also built (once per distinct env section, so a grid over depth and seed builds each
    task once: the paper's 250-run main table validates in about 25 s on a 2-core CPU)."""
    GlobalHydra.instance().clear()
    jobs = []
    try:
        with initialize_config_dir(config_dir=conf_dir, version_base=None, job_name="train"):
            all_overrides = _job_overrides(conf_dir, argv, multirun)
            shared = set.intersection(*(set(o) for o in all_overrides)) if len(all_overrides) > 1 else set()
            for index, overrides in enumerate(all_overrides):
                job = Job(index, overrides, None, tuple(o for o in overrides if o not in shared))
                try:
                    dcfg = _compose(conf_dir, overrides)
                    container = OmegaConf.to_container(dcfg, resolve=False)
                    container.pop("hydra", None)
                    container = OmegaConf.to_container(OmegaConf.create(container), resolve=True)
                    job.cfg = from_dict(container)
                except ConfigError as err:
                    raise ConfigError(f"{job.describe()}: {err}" if multirun else str(err)) from None
                jobs.append(job)
    finally:
        GlobalHydra.instance().clear()
    if multirun:  # a single run builds its env once, in the job itself (before anything compiles)
        _validate_envs(jobs)
    return jobs


def _validate_envs(jobs: list[Job]) -> None:
    # An env family may set XLA flags when first imported (the arm): import every family
    # the jobs use before any env is built and starts JAX's backend.
    # Only the families the jobs use: importing the arm's would change every program's codegen.
    for env_id in sorted({job.cfg.env.id for job in jobs}):
        try:
            importlib.import_module(envs.registry.family_of(env_id))
        except KeyError:
            pass  # an unknown id: build_envs below names it
    checked: set[str] = set()
    for job in jobs:
        key = json.dumps([job.cfg.env.__dict__, job.cfg.train.num_envs, job.cfg.train.batch_size], sort_keys=True,
                         default=str)
        if key in checked:
            continue
        try:
            build_envs(job.cfg)
        except ConfigError as err:
            raise ConfigError(f"{job.describe()}: {err}") from None
        checked.add(key)
