"""`crl-train`: the one Hydra entry point (the only module that imports Hydra).

It composes conf/, turns the result into the library's plain dataclasses (validating every
value before anything is compiled or written) and calls `crl.run.run_training`.

Exit codes: 0 done; 2 bad configuration or output location (one line on stderr);
3 training became non-finite; 4 no usable checkpoint to resume from.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
import sys

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from crl.apps import enable_compilation_cache
from crl.apps.callbacks import app_callbacks
from crl.checkpoint import CheckpointError
from crl.config import Config, ConfigError, default_tree, from_dict
from crl.run import NonFiniteError, build_envs, run_training

CONF_DIR = pathlib.Path(__file__).resolve().parents[2] / "conf"


def register_configs() -> None:
    """Hydra's base config is the library's dataclass defaults (`crl.config`), registered
    as the node `crl_defaults` that conf/config.yaml composes first: each default is written
    once, and conf/ holds only tasks, presets and launchers. Idempotent."""
    ConfigStore.instance().store(name="crl_defaults", node=default_tree(Config))
    # ${crl_or:a,b}: a unless it is null (run-dir names show derived depths and widths).
    if not OmegaConf.has_resolver("crl_or"):
        OmegaConf.register_new_resolver("crl_or", lambda value, fallback: fallback if value is None else value)


register_configs()
EXIT_CONFIG, EXIT_NON_FINITE, EXIT_CHECKPOINT = 2, 3, 4
_CREATED_ROOT: pathlib.Path | None = None  # the outermost output directory this command creates


def _remove_if_only_hydra_files(run_dir: pathlib.Path) -> None:
    """Hydra creates the run dir (.hydra/, a log) before we can validate: undo that."""
    if not run_dir.is_dir():
        return
    leftovers = [p for p in run_dir.iterdir() if p.name != ".hydra" and p.suffix != ".log"]
    if leftovers:
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


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def _main(dcfg: DictConfig) -> float:
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU" notices
    run_dir = pathlib.Path(HydraConfig.get().runtime.output_dir)
    try:
        container = OmegaConf.to_container(dcfg, resolve=True)
        cfg = from_dict(container)
        build_envs(cfg)  # an unknown env id or env parameter fails here, before compiling
    except ConfigError as err:
        _remove_if_only_hydra_files(run_dir)
        _fail(EXIT_CONFIG, "config error", str(err))

    enable_compilation_cache()
    try:
        # config.yaml holds the validated config, derived values resolved (Hydra's composed
        # copy, with its nulls, stays in .hydra/).
        row = run_training(cfg, run_dir, files={"config.yaml": OmegaConf.to_yaml(cfg.to_dict())},
                           callbacks=app_callbacks(cfg, run_dir))
    except ConfigError as err:
        _remove_if_only_hydra_files(run_dir)
        _fail(EXIT_CONFIG, "config error", str(err))
    except NonFiniteError as err:
        _fail(EXIT_NON_FINITE, "training diverged", str(err))
    except CheckpointError as err:
        _fail(EXIT_CHECKPOINT, "cannot resume", str(err))
    print(f"crl-train: done in {run_dir}: time_at_goal {row.get('eval/time_at_goal', float('nan')):.2f}")
    # The return value is what Hydra's sweepers optimise.
    return float(row.get("eval/time_at_goal", float("nan")))


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


def main() -> None:
    sys.argv[1:] = env_param_overrides(sys.argv[1:])
    if not any(a.startswith(("--help", "-h", "--cfg", "-c", "--info", "--hydra-help")) for a in sys.argv[1:]):
        _precheck_output_location(sys.argv[1:])
    _main()


if __name__ == "__main__":
    main()
