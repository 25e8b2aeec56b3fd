"""`crl-train`: the one Hydra entry point (the only module that imports Hydra).

It composes conf/, turns the result into the library's plain dataclasses (validating every
value before anything is compiled or written) and calls `crl.run.run_training`.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

CONF_DIR = pathlib.Path(__file__).resolve().parents[1] / "conf"


def _enable_compilation_cache() -> None:
    """Reuse compiled programs across runs (sweeps recompile the same shapes otherwise).

    CRL_JAX_CACHE=off disables it; any other value is the cache directory.
    """
    where = os.environ.get("CRL_JAX_CACHE", str(pathlib.Path.home() / ".cache" / "crl" / "jax"))
    if where.lower() == "off":
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _remove_if_only_hydra_files(run_dir: pathlib.Path) -> None:
    """Hydra creates the run dir (.hydra/, a log) before we can validate: undo that."""
    if not run_dir.is_dir():
        return
    leftovers = [p for p in run_dir.iterdir() if p.name != ".hydra" and p.suffix != ".log"]
    if not leftovers:
        shutil.rmtree(run_dir, ignore_errors=True)


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def _main(dcfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    from crl.config import ConfigError, from_dict

    run_dir = pathlib.Path(HydraConfig.get().runtime.output_dir)
    try:
        container = OmegaConf.to_container(dcfg, resolve=True)
        cfg = from_dict(container)
        from crl.run import build_envs

        build_envs(cfg)  # an unknown env id or env parameter fails here, before compiling
    except ConfigError as err:
        _remove_if_only_hydra_files(run_dir)
        print(f"crl-train: config error: {err}", file=sys.stderr)
        raise SystemExit(2) from None

    _enable_compilation_cache()
    from crl.run import run_training

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(container))
    row = run_training(cfg, run_dir)
    print(f"crl-train: done in {run_dir}: time_at_goal {row.get('eval/time_at_goal', float('nan')):.2f}")
    # The return value is what Hydra's sweepers optimise.
    return float(row.get("eval/time_at_goal", float("nan")))


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
