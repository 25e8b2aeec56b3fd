"""Residual MLPs, the one trunk of every agent's networks, and the tanh-Gaussian actor.

    x -> Dense(width) -> LayerNorm -> act                       (input layer)
      -> depth/4 x [ (Dense -> LayerNorm -> act) x 4, + block input ]
      -> Dense(output)                                          (linear head)

`depth` counts the Dense layers inside residual blocks. With `scan_blocks` the blocks
are one `nn.scan` over a block axis (parameters carry a leading axis of size depth/4),
so XLA compiles one block whatever the depth. `remat` recomputes each block's
activations in the backward pass instead of storing them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from crl.fused_layers import dense_norm_act, residual_block

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {"swish": nn.swish, "relu": nn.relu}
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# The tanh Jacobian in the actor's log-probability (`network.log_prob`):
#   exact  log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for any u (ours)
#   paper  log(1 - tanh(u)^2 + 1e-6), as the paper's code computes it from the float32 action
LOG_PROBS = ("exact", "paper")

# variance_scaling(1/3, fan_in, uniform): the paper's initialiser; biases start at zero.
kernel_init = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    depth: int = 4
    width: int = 256
    activation: str = "swish"
    layer_norm: bool = True
    residual: bool = True
    scan_blocks: bool = True
    remat: bool = False
    dtype: Any = jnp.float32  # computation dtype of the matmuls (bfloat16 for mixed precision)

    def __post_init__(self):
        if self.depth < 0 or self.depth % 4:
            raise ValueError(f"network.depth: {self.depth} is not allowed; use a multiple of 4 (0, 4, 8, ..., 1024)")
        if self.width < 1:
            raise ValueError(f"network.width: {self.width} is not allowed; use a positive integer")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"network.activation: {self.activation!r} is not allowed; use one of {', '.join(ACTIVATIONS)}")


class _DenseParams(nn.Module):
    """The parameters of a Dense layer, named as flax.linen.Dense names them."""

    features: int

    @nn.compact
    def __call__(self, in_features: int):
        kernel = self.param("kernel", kernel_init, (in_features, self.features), jnp.float32)
        return kernel, self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)


class _NormParams(nn.Module):
    """The parameters of a LayerNorm, named as flax.linen.LayerNorm names them."""

    features: int

    @nn.compact
    def __call__(self):
        scale = self.param("scale", nn.initializers.ones_init(), (self.features,), jnp.float32)
        return scale, self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)


class _LayerParams(nn.Module):
    """Dense (and LayerNorm) parameters of one layer: (kernel, bias, scale, offset).

    Without LayerNorm, scale and offset are constants (ones and zeros)."""

    width: int
    layer_norm: bool

    @nn.compact
    def __call__(self, in_features: int):
        return _layer_params(self.width, self.layer_norm, in_features)


def _layer_params(width: int, layer_norm: bool, in_features: int):
    """Called inside a compact method: creates Dense_0 (and LayerNorm_0) in that module."""
    kernel, bias = _DenseParams(width, name="Dense_0")(in_features)
    if layer_norm:
        scale, offset = _NormParams(width, name="LayerNorm_0")()
    else:
        scale, offset = jnp.ones((width,), jnp.float32), jnp.zeros((width,), jnp.float32)
    return kernel, bias, scale, offset


class DenseNormAct(nn.Module):
    """Dense -> (LayerNorm) -> activation: the unit every layer of the trunk is made of.

    Parameters are float32, laid out as flax's Dense_0/LayerNorm_0; the computation is
    `crl.fused_layers.dense_norm_act` (hand-written backward pass)."""

    width: int
    activation: str
    layer_norm: bool
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        params = _layer_params(self.width, self.layer_norm, x.shape[-1])
        return dense_norm_act(x, *params, self.activation, self.layer_norm, self.dtype)


class ResidualBlock(nn.Module):
    """Four Dense-Norm-Act layers; the block input is added after the last activation.

    Computed by `crl.fused_layers.residual_block`, which saves one packed array per
    block for the backward pass. The (carry, _) -> (carry, None) signature is what
    `nn.scan` expects.
    """

    width: int
    activation: str
    layer_norm: bool
    residual: bool
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, _=None):
        layers = tuple(
            _LayerParams(self.width, self.layer_norm, name=f"DenseNormAct_{i}")(self.width) for i in range(4)
        )
        return residual_block(x, layers, self.activation, self.layer_norm, self.residual, self.dtype), None


class ResidualMLP(nn.Module):
    config: MLPConfig
    output_size: int

    @nn.compact
    def __call__(self, x):
        c = self.config
        x = DenseNormAct(c.width, c.activation, c.layer_norm, c.dtype, name="input")(x)
        num_blocks = c.depth // 4
        block = ResidualBlock
        if c.remat:
            # prevent_cse=False is safe (and faster) under scan, which already isolates blocks.
            block = nn.remat(block, prevent_cse=not c.scan_blocks)
        kwargs = dict(width=c.width, activation=c.activation, layer_norm=c.layer_norm, residual=c.residual, dtype=c.dtype)
        if num_blocks and c.scan_blocks:
            stack = nn.scan(
                block,
                variable_axes={"params": 0},
                split_rngs={"params": True},
                length=num_blocks,
            )
            x, _ = stack(**kwargs, name="blocks")(x, None)
        else:
            for i in range(num_blocks):
                x, _ = block(**kwargs, name=f"block_{i}")(x, None)
        x = nn.Dense(self.output_size, kernel_init=kernel_init, dtype=c.dtype, param_dtype=jnp.float32, name="head")(x)
        return x.astype(jnp.float32)


def stack_block_params(params: dict, num_blocks: int) -> dict:
    """Unrolled parameters (block_0 ... block_{n-1}) -> scanned layout (`blocks`, leading axis)."""
    params = dict(params)
    blocks = [params.pop(f"block_{i}") for i in range(num_blocks)]
    if blocks:
        params["blocks"] = jax.tree.map(lambda *xs: jnp.stack(xs), *blocks)
    return params


def unstack_block_params(params: dict) -> dict:
    """Scanned parameters -> unrolled layout; the inverse of `stack_block_params`."""
    params = dict(params)
    if "blocks" in params:
        stacked = params.pop("blocks")
        n = jax.tree.leaves(stacked)[0].shape[0]
        for i in range(n):
            params[f"block_{i}"] = jax.tree.map(lambda x, i=i: x[i], stacked)
    return params


# -- the actor ---------------------------------------------------------------------------


class Actor(nn.Module):
    """pi(a | s, g): a tanh-squashed Gaussian. Returns (mean, log_std) of the pre-tanh Gaussian.
    `log_prob` (one of LOG_PROBS): the form of the log-probability that sampling from it
    uses (`sample_action(mean, log_std, key, actor.log_prob)`); it has no parameters."""

    config: MLPConfig
    action_size: int
    log_prob: str = "exact"

    @nn.compact
    def __call__(self, state, goal):
        out = ResidualMLP(self.config, 2 * self.action_size, name="trunk")(jnp.concatenate([state, goal], -1))
        mean, raw_log_std = jnp.split(out, 2, axis=-1)
        # Squash log-std smoothly into [LOG_STD_MIN, LOG_STD_MAX].
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (jnp.tanh(raw_log_std) + 1.0)
        return mean, log_std


def sample_action(mean, log_std, key, log_prob: str = "exact"):
    """Reparameterised sample a = tanh(u), u ~ N(mean, std), and its log-probability.

    `log_prob` picks the tanh Jacobian's form (LOG_PROBS): `exact` (default) or `paper`.
    Per action dimension the paper's is log(1 + 1e-6 / (1 - tanh(u)^2)) larger (1e-4 at
    |u| = 3, 0.3 at |u| = 7), and where tanh(u)^2 rounds to 1 in float32 it stops at
    log(1e-6) while the exact form keeps falling (about -2 |u|).
    """
    if log_prob not in LOG_PROBS:
        raise ValueError(f"network.log_prob: {log_prob!r} is not allowed; use one of {', '.join(LOG_PROBS)}")
    std = jnp.exp(log_std)
    noise = jax.random.normal(key, mean.shape, mean.dtype)
    u = mean + std * noise
    action = jnp.tanh(u)
    gaussian_logp = -0.5 * noise**2 - log_std - 0.5 * jnp.log(2 * jnp.pi)
    if log_prob == "paper":
        log_det = jnp.log(1.0 - jnp.square(action) + 1e-6)
    else:
        # log|d tanh(u)/du| = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|.
        log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return action, jnp.sum(gaussian_logp - log_det, axis=-1)


def deterministic_action(mean):
    return jnp.tanh(mean)


def param_count(params) -> int:
    return int(sum(x.size for x in jax.tree.leaves(params)))


# -- cold-starting the last layers of loaded parameters -------------------------------------


def dense_layer_order(mlp_params: dict) -> list[tuple]:
    """The Dense layers of one residual MLP's parameters, last first, as paths: ("head",),
    blocks' ("blocks", i, "DenseNormAct_j") (scanned) or ("block_i", "DenseNormAct_j"),
    then ("input",)."""
    order = [("head",)]
    if "blocks" in mlp_params:
        extra = mlp_params["head"]["kernel"].ndim - 2  # leading axes of a vmapped (twin) network
        num_blocks = jax.tree.leaves(mlp_params["blocks"])[0].shape[extra]
        order += [("blocks", i, f"DenseNormAct_{j}") for i in reversed(range(num_blocks)) for j in (3, 2, 1, 0)]
    else:
        num_blocks = sum(1 for k in mlp_params if k.startswith("block_"))
        order += [(f"block_{i}", f"DenseNormAct_{j}") for i in reversed(range(num_blocks)) for j in (3, 2, 1, 0)]
    return order + [("input",)]


def reinit_last_layers(loaded: dict, fresh: dict, n: int) -> dict:
    """`loaded` with the last `n` Dense layers (with their LayerNorms) of every residual MLP
    in it taken from `fresh` (the same structure, newly initialised): the cold-started last
    layers of the paper's offline test. Every subtree holding "input" and "head" is one MLP
    (the actor's trunk, the critic's encoders, each twin of a twin Q network)."""
    if n == 0:
        return loaded

    def walk(a, b):
        if not isinstance(a, dict):
            return a
        if "input" in a and "head" in a:
            return _reinit_mlp(a, b, n)
        return {k: walk(a[k], b[k]) for k in a}

    return walk(loaded, fresh)


def _reinit_mlp(a: dict, b: dict, n: int) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in a.items()}
    extra = b["head"]["kernel"].ndim - 2
    for path in dense_layer_order(a)[:n]:
        if path[0] == "blocks":
            _, i, layer = path
            index = (slice(None),) * extra + (i,)
            out["blocks"][layer] = jax.tree.map(lambda x, y: x.at[index].set(y[index]), out["blocks"][layer],
                                                b["blocks"][layer])
        elif len(path) == 2:
            out[path[0]][path[1]] = b[path[0]][path[1]]
        else:
            out[path[0]] = b[path[0]]
    return out
