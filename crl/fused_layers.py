"""Dense -> LayerNorm -> activation layers and residual blocks with hand-written VJPs.

Pure functions of arrays; `crl.networks` holds the parameters and calls them.

Why not plain autodiff: XLA differentiates LayerNorm and swish into many small passes
and keeps about seven (batch, width) tensors per layer for the backward pass. Under
`nn.scan` every one of them becomes a stacked loop output that is zero-filled and
copied whole on every call. Here a layer's backward needs only its input and its
pre-norm activations `h`: the row statistics, the normalised values and the activation
are recomputed from `h` (cheap elementwise work). A residual block saves only its input
and its four `h`, packed into one array, so a scanned stack has one stacked residual
per block instead of dozens. On a 2-core CPU this made the depth-16, batch-512 update
1.7x faster and cut the saved activations of a depth-1024 update 3x (docs/benchmarks.md).

Numerics: matmuls run in `dtype` (float32, or bfloat16 for mixed precision) with
float32 accumulation; normalisation and activation are float32; layer outputs are cast
to `dtype`. LayerNorm is flax's (epsilon 1e-6, variance as E[h^2] - E[h]^2).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

LN_EPSILON = 1e-6  # flax.linen.LayerNorm's default
F32 = jnp.float32


def _pre(x, kernel, bias, dtype):
    """h = x @ kernel + bias (float32)."""
    return jnp.matmul(x.astype(dtype), kernel.astype(dtype), preferred_element_type=F32) + bias


def _normalise(h):
    """(h - mean) / std over the last axis, and 1/std."""
    mean = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.maximum(jnp.mean(h * h, axis=-1, keepdims=True) - mean * mean, 0.0)
    rstd = jax.lax.rsqrt(var + LN_EPSILON)
    return (h - mean) * rstd, rstd


def _activate(z, activation):
    if activation == "swish":
        return z * jax.nn.sigmoid(z)
    if activation == "relu":
        return jnp.maximum(z, 0.0)
    raise ValueError(f"network.activation: {activation!r} has no fused implementation; use swish or relu")


def _activation_grad(z, dy, activation):
    """dy * act'(z)."""
    if activation == "swish":
        s = jax.nn.sigmoid(z)
        return dy * s * (1.0 + z * (1.0 - s))
    if activation == "relu":
        return jnp.where(z > 0, dy, 0.0)
    raise ValueError(f"network.activation: {activation!r} has no fused implementation; use swish or relu")


def _post(h, scale, offset, activation, layer_norm, dtype):
    """The layer output act(LayerNorm(h)) from its pre-norm activations."""
    z = _normalise(h)[0] * scale + offset if layer_norm else h
    return _activate(z, activation).astype(dtype)


def _layer_bwd(x, kernel, h, scale, offset, dy, activation, layer_norm, dtype):
    """Cotangents of (x, kernel, bias, scale, offset) of one layer, given dy and the saved x, h."""
    dy = dy.astype(F32)
    if layer_norm:
        xhat, rstd = _normalise(h)
        dz = _activation_grad(xhat * scale + offset, dy, activation)
        d_scale = jnp.sum((dz * xhat).reshape(-1, h.shape[-1]), axis=0)
        d_offset = jnp.sum(dz.reshape(-1, h.shape[-1]), axis=0)
        g = dz * scale
        dh = rstd * (g - jnp.mean(g, axis=-1, keepdims=True) - xhat * jnp.mean(g * xhat, axis=-1, keepdims=True))
    else:
        dh = _activation_grad(h, dy, activation)
        d_scale, d_offset = jnp.zeros_like(scale), jnp.zeros_like(offset)
    dh_c = dh.astype(dtype)
    flat_x = x.reshape(-1, x.shape[-1]).astype(dtype)
    d_kernel = jnp.matmul(flat_x.T, dh_c.reshape(-1, dh.shape[-1]), preferred_element_type=F32).astype(kernel.dtype)
    d_bias = jnp.sum(dh.reshape(-1, dh.shape[-1]), axis=0)
    dx = jnp.matmul(dh_c, kernel.astype(dtype).T, preferred_element_type=F32).astype(x.dtype)
    return dx, d_kernel, d_bias, d_scale, d_offset


# -- one layer ---------------------------------------------------------------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def dense_norm_act(x, kernel, bias, scale, offset, activation: str, layer_norm: bool, dtype):
    """act(LayerNorm(x @ kernel + bias)); `scale` and `offset` are LayerNorm's parameters
    (ignored, with zero cotangents, when `layer_norm` is False)."""
    return _post(_pre(x, kernel, bias, dtype), scale, offset, activation, layer_norm, dtype)


def _dense_norm_act_fwd(x, kernel, bias, scale, offset, activation, layer_norm, dtype):
    h = _pre(x, kernel, bias, dtype)
    return _post(h, scale, offset, activation, layer_norm, dtype), (x, kernel, h, scale, offset)


def _dense_norm_act_bwd(activation, layer_norm, dtype, residuals, dy):
    x, kernel, h, scale, offset = residuals
    return _layer_bwd(x, kernel, h, scale, offset, dy, activation, layer_norm, dtype)


dense_norm_act.defvjp(_dense_norm_act_fwd, _dense_norm_act_bwd)


# -- a residual block --------------------------------------------------------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def residual_block(x, layers, activation: str, layer_norm: bool, residual: bool, dtype):
    """`layers`: a tuple of (kernel, bias, scale, offset), applied in order with
    `dense_norm_act`; the block input is added to the output when `residual`."""
    return _residual_block_fwd(x, layers, activation, layer_norm, residual, dtype)[0]


def _residual_block_fwd(x, layers, activation, layer_norm, residual, dtype):
    hs, y = [], x
    for kernel, bias, scale, offset in layers:
        h = _pre(y, kernel, bias, dtype)
        hs.append(h)
        y = _post(h, scale, offset, activation, layer_norm, dtype)
    out = y + x if residual else y
    # One packed residual (block input and every h): one stacked array under nn.scan.
    saved = jnp.stack([x.astype(F32), *hs])
    return out, (saved, layers)


def _residual_block_bwd(activation, layer_norm, residual, dtype, residuals, d_out):
    saved, layers = residuals
    d = d_out
    grads = [None] * len(layers)
    for i in reversed(range(len(layers))):
        kernel, bias, scale, offset = layers[i]
        if i == 0:
            x_i = saved[0].astype(dtype)
        else:  # the layer input: the previous layer's output, recomputed from its h
            _, _, prev_scale, prev_offset = layers[i - 1]
            x_i = _post(saved[i], prev_scale, prev_offset, activation, layer_norm, dtype)
        d, *g = _layer_bwd(x_i, kernel, saved[i + 1], scale, offset, d, activation, layer_norm, dtype)
        grads[i] = tuple(g)
    if residual:
        d = d + d_out
    return d.astype(d_out.dtype), tuple(grads)


residual_block.defvjp(_residual_block_fwd, _residual_block_bwd)
