"""Deep contrastive RL in pure JAX: networks, losses, replay buffer, trainer, evaluation.

`crl` knows nothing of Hydra; `crl.apps.train` is the command-line entry point."""

__version__ = "0.1.0"
