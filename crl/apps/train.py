"""`crl-train`: the one Hydra entry point (the only module that imports Hydra).

It composes conf/, turns the result into the library's plain dataclasses (validating every
value, of every job of a sweep, before anything is compiled or written) and calls
`crl.run.run_training`. `crl-train resume=<run dir>` continues a run from its saved config.

Exit codes: 0 done; 2 bad configuration or output location (one line on stderr);
3 training became non-finite; 4 no usable checkpoint to resume from; 130 stopped by
Ctrl-C (a checkpoint saved; the line says how to resume).
"""

from __future__ import annotations

import json
import logging
import pathlib
import shutil
import sys

import yaml

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from crl import rundir
from crl.apps import enable_compilation_cache
from crl.apps import plan as plan_app
from crl.apps.callbacks import app_callbacks
from crl import agents
from crl.apps.overrides import compose_jobs
from crl.checkpoint import CheckpointError, complete_checkpoints
from crl.config import Config, ConfigError, default_tree, from_dict
from crl.run import Interrupted, NonFiniteError, build_envs, run_training
from envs.mujoco_draw import as_gl_error

CONF_DIR = pathlib.Path(__file__).resolve().parents[2] / "conf"


def register_configs() -> None:
    """Hydra's base config is the library's dataclass defaults (`crl.config`), registered
    as the node `crl_defaults` that conf/config.yaml composes first: each default is written
    once, and conf/ holds only tasks, presets and launchers. Idempotent."""
    store = ConfigStore.instance()
    store.store(name="crl_defaults", node=default_tree(Config))
    # Each agent's settings with their defaults (crl.agents.<name>.Config); conf/agent/<name>.yaml
    # composes its node, so an agent's defaults too are written once.
    for name in agents.AGENTS:
        store.store(group="agent_defaults", name=name, node=default_tree(agents.config_class(name)))
    # ${crl_or:a,b}: a unless it is null (run-dir names show derived depths and widths).
    if not OmegaConf.has_resolver("crl_or"):
        OmegaConf.register_new_resolver("crl_or", lambda value, fallback: fallback if value is None else value)
    # ${crl_depths:depth,actor,critic}: d8 when actor and critic agree, a8_c32 when they differ.
    if not OmegaConf.has_resolver("crl_depths"):
        OmegaConf.register_new_resolver("crl_depths", run_dir_depths)


def run_dir_depths(depth, actor_depth, critic_depth) -> str:
    actor = depth if actor_depth is None else actor_depth
    critic = depth if critic_depth is None else critic_depth
    return f"d{critic}" if actor == critic else f"a{actor}_c{critic}"


register_configs()
EXIT_CONFIG, EXIT_NON_FINITE, EXIT_CHECKPOINT, EXIT_INTERRUPTED = 2, 3, 4, 130
_CREATED_ROOT: pathlib.Path | None = None  # the outermost output directory this command creates


def _remove_if_only_hydra_files(run_dir: pathlib.Path) -> None:
    """Hydra creates the run dir (.hydra/, a log) before we can validate: undo that."""
    if not run_dir.is_dir():
        return
    leftovers = [p for p in run_dir.iterdir() if p.name not in (".hydra", rundir.LOCK_FILE) and p.suffix != ".log"]
    if leftovers or rundir.holder(run_dir) is not None:
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    # Also the empty parents that this command created (e.g. runs/<env>/).
    parent = run_dir.parent
    while _CREATED_ROOT is not None and parent.is_relative_to(_CREATED_ROOT):
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


def _fail(code: int, kind: str, message: str) -> None:
    print(f"crl-train: {kind}: {message}", file=sys.stderr)
    raise SystemExit(code)


def check_envs(cfg: Config, run_dir: pathlib.Path | None = None) -> None:
    """Build the envs once before anything compiles: a bad env id or parameter is one line,
    and so is MuJoCo failing to load the GL library MUJOCO_GL names (it loads it at import)."""
    try:
        build_envs(cfg)
    except ConfigError as err:
        if run_dir is not None:
            _remove_if_only_hydra_files(run_dir)
        _fail(EXIT_CONFIG, "config error", str(err))
    except Exception as err:
        gl_error = as_gl_error(err)
        if gl_error is None:
            raise
        if run_dir is not None:
            _remove_if_only_hydra_files(run_dir)
        _fail(EXIT_CONFIG, "config error", str(gl_error))


def _done(cfg: Config, run_dir: pathlib.Path, row: dict) -> None:
    score = f"time_at_goal {row.get('eval/time_at_goal', float('nan')):.2f}"
    if cfg.train.num_seeds > 1:
        last = cfg.seed + cfg.train.num_seeds - 1
        score += f" (seed {cfg.seed}; seeds {cfg.seed}-{last} in {run_dir}/seed_<seed>/)"
    print(f"crl-train: done in {run_dir}: {score}")


def resume_command(run_dir: pathlib.Path) -> str:
    return f"crl-train resume={run_dir}"


def train(cfg: Config, run_dir: pathlib.Path) -> dict:
    """Run (or resume) one training with the application's callbacks; the exceptions of a
    run become one line and their exit code."""
    run_dir = run_dir.absolute()
    enable_compilation_cache()
    print(f"crl-train: run directory {run_dir}", flush=True)
    try:
        n = cfg.train.num_seeds
        callbacks = app_callbacks(cfg, run_dir) if n == 1 else (  # a batched run: each seed's own
            lambda seed_cfg, seed_dir: app_callbacks(seed_cfg, seed_dir, progress_bar=seed_cfg.seed == cfg.seed,
                                                     label=f" (seed {cfg.seed}; seeds {cfg.seed}-{cfg.seed + n - 1} in one program)"))
        return run_training(cfg, run_dir, callbacks=callbacks, resume_command=resume_command(run_dir))
    except ConfigError as err:
        _remove_if_only_hydra_files(run_dir)
        _fail(EXIT_CONFIG, "config error", str(err))
    except NonFiniteError as err:
        _fail(EXIT_NON_FINITE, "training diverged", str(err))
    except CheckpointError as err:
        _fail(EXIT_CHECKPOINT, "cannot resume", str(err))
    except Interrupted as err:
        _fail(EXIT_INTERRUPTED, "stopped", str(err))
    except KeyboardInterrupt:
        started = (run_dir / rundir.MARKER).exists()
        _fail(EXIT_INTERRUPTED, "stopped", "interrupted at once; " + (
            f"the last checkpoint in {run_dir} stands; resume with: {resume_command(run_dir)}" if started
            else "nothing was trained"))


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def _main(dcfg: DictConfig) -> float:
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU" notices
    run_dir = pathlib.Path(HydraConfig.get().runtime.output_dir)
    try:
        cfg = from_dict(OmegaConf.to_container(dcfg, resolve=True))
    except ConfigError as err:
        _remove_if_only_hydra_files(run_dir)
        _fail(EXIT_CONFIG, "config error", str(err))
    check_envs(cfg, run_dir)  # an unknown env id or env parameter fails here, before compiling
    row = train(cfg, run_dir)
    _done(cfg, run_dir, row)
    # The return value is what Hydra's sweepers optimise.
    return float(row.get("eval/time_at_goal", float("nan")))


def _set_dotted(tree: dict, override: str) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key:
        _fail(EXIT_CONFIG, "config error", f"malformed override {override!r}: use key=value")
    parts = key.lstrip("+").split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            _fail(EXIT_CONFIG, "config error", f"{key}: unknown key")
    node[parts[-1]] = yaml.safe_load(text) if text else None


def resume(run_dir_text: str, overrides: list[str]) -> None:
    """`crl-train resume=<run dir> [logging.*=... checkpoint.*=... video.*=...]`: continue a
    run from the config it saved (run_config.json); the rest must stay as it was."""
    run_dir = pathlib.Path(run_dir_text).expanduser().absolute()
    saved = run_dir / rundir.MARKER
    if not saved.is_file():
        _fail(EXIT_CONFIG, "config error", f"resume: {str(run_dir)!r} is not a crl run directory (no {rundir.MARKER})")
    tree = json.loads(saved.read_text())
    for override in overrides:
        _set_dotted(tree, override)
    try:
        cfg = from_dict(tree)
        rundir.check_not_locked(run_dir, "resume")
    except ConfigError as err:
        _fail(EXIT_CONFIG, "config error", str(err))
    check_envs(cfg)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    row = train(cfg, run_dir)
    _done(cfg, run_dir, row)


def _precheck_output_location(argv: list[str]) -> None:
    """Hydra creates the output dir before any of our code runs and fails with a traceback
    if it cannot; check the likely cases first so the user gets one line instead."""
    multirun = "-m" in argv or "--multirun" in argv
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    target = pathlib.Path(next((a.split("=", 1)[1] for a in argv if a.startswith(key + "=")), "runs"))
    target = target.absolute()
    first_new = target
    while not first_new.parent.exists() and first_new.parent != first_new:
        first_new = first_new.parent
    created = not first_new.exists()
    global _CREATED_ROOT
    _CREATED_ROOT = first_new if created else None
    try:
        target.mkdir(parents=True, exist_ok=True)
        (target / ".write_probe").write_bytes(b"ok")
        (target / ".write_probe").unlink()
    except OSError as err:
        _fail(EXIT_CONFIG, "config error", f"{key}: {str(target)!r} is not writable ({err.strerror or err})")
    finally:
        if created:  # Hydra creates it again; leave nothing behind if we stop early
            shutil.rmtree(first_new, ignore_errors=True)


def env_param_overrides(argv: list[str]) -> list[str]:
    """`env.params.NAME=V` adds or overrides a task parameter without Hydra's `+`: a task's
    config lists only the parameters it changes, and the env family checks every name and
    value itself (one line naming the key). Hydra's `++` means exactly add-or-override."""
    return [f"++{a}" if a.startswith(("env.params.", "env.eval_params.")) and "=" in a else a for a in argv]


_PASS_THROUGH = ("--help", "-h", "--cfg", "-c", "--info", "--hydra-help", "--resolve", "-p", "--package",
                 "--run", "-r", "--shell-completion", "-sc", "--config-path", "-cp", "--config-name", "-cn",
                 "--config-dir", "-cd", "--experimental-rerun")


def precheck(argv: list[str]) -> None:
    """Before Hydra runs or writes anything: compose and validate every job of the command,
    then check an explicitly named run directory (in use, not ours, checkpoints gone)."""
    multirun = "-m" in argv or "--multirun" in argv
    overrides = [a for a in argv if not a.startswith("-")]
    try:
        jobs = compose_jobs(str(CONF_DIR), overrides, multirun)
    except ConfigError as err:
        _fail(EXIT_CONFIG, "config error", str(err))
    _precheck_output_location(argv)
    explicit = next((a.split("=", 1)[1] for a in overrides if a.startswith("hydra.run.dir=")), None)
    if not multirun and explicit:
        run_dir = pathlib.Path(explicit).absolute()
        try:
            rundir.check_not_locked(run_dir)
            rundir.check_is_run_dir(run_dir)
            cfg = jobs[0].cfg
            if not cfg.checkpoint.restart:
                has = bool(complete_checkpoints(run_dir / "checkpoints"))
                rundir.check_resumable(run_dir, has, cfg.first_checkpoint_epoch)
        except ConfigError as err:
            _fail(EXIT_CONFIG, "config error", str(err))


def plan(argv: list[str]) -> None:
    """`--plan [--plan-json PATH]`: compose every job, print its memory plan, train nothing."""
    json_path = None
    rest = []
    it = iter(argv)
    for a in it:
        if a == "--plan":
            continue
        if a.startswith("--plan-json"):
            json_path = a.split("=", 1)[1] if "=" in a else next(it, None)
            if not json_path:
                _fail(EXIT_CONFIG, "config error", "--plan-json: give the JSON file to write")
            continue
        rest.append(a)
    multirun = "-m" in rest or "--multirun" in rest
    try:
        jobs = compose_jobs(str(CONF_DIR), [a for a in rest if not a.startswith("-")], multirun)
        if not multirun:
            check_envs(jobs[0].cfg)
        plan_app.run([job.cfg for job in jobs], json_path)
    except ConfigError as err:
        _fail(EXIT_CONFIG, "config error", str(err))


def main() -> None:
    argv = env_param_overrides(sys.argv[1:])
    if "--plan" in argv:
        return plan(argv)
    resume_args = [a for a in argv if a.startswith("resume=")]
    if resume_args:
        if "-m" in argv or "--multirun" in argv or len(resume_args) > 1:
            _fail(EXIT_CONFIG, "config error", "resume: give one run directory, without -m")
        others = [a for a in argv if a not in resume_args]
        return resume(resume_args[0].split("=", 1)[1], others)
    if not any(a.startswith(_PASS_THROUGH) for a in argv):
        precheck(argv)
    sys.argv[1:] = argv
    _main()


if __name__ == "__main__":
    main()
