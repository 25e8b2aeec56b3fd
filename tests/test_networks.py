
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crl.agents.crl.networks import Critic
from crl.networks import (
    Actor,
    MLPConfig,
    ResidualMLP,
    param_count,
    sample_action,
    stack_block_params,
    unstack_block_params,
)


def expected_params(in_dim, width, depth, out, layer_norm=True):
    ln = 2 * width if layer_norm else 0
    layer = width * width + width + ln
    return in_dim * width + width + ln + depth * layer + width * out + out


@pytest.mark.parametrize("depth", [0, 4, 16, 64, 256, 1024])
def test_shapes_and_param_counts(depth):
    cfg = MLPConfig(depth=depth, width=32)
    net = ResidualMLP(cfg, output_size=7)
    x = jnp.ones((3, 5))
    params = jax.jit(net.init)(jax.random.PRNGKey(0), x)["params"]
    if depth:  # scanned blocks: the traced program does not grow with depth (compile time in crl-bench)
        program_size = lambda d: len(jax.make_jaxpr(ResidualMLP(MLPConfig(depth=d, width=32), 7).init)(  # noqa: E731
            jax.random.PRNGKey(0), x).jaxpr.eqns)
        assert program_size(depth) == program_size(4)
    assert param_count(params) == expected_params(5, 32, depth, 7)
    if depth:
        assert params["blocks"]["DenseNormAct_0"]["Dense_0"]["kernel"].shape == (depth // 4, 32, 32)
    y = net.apply({"params": params}, x)
    assert y.shape == (3, 7) and bool(jnp.all(jnp.isfinite(y)))


def test_no_layer_norm_param_count():
    net = ResidualMLP(MLPConfig(depth=8, width=16, layer_norm=False), output_size=3)
    params = net.init(jax.random.PRNGKey(0), jnp.ones((1, 4)))["params"]
    assert param_count(params) == expected_params(4, 16, 8, 3, layer_norm=False)


@pytest.mark.parametrize("variant", [{}, {"activation": "relu"}, {"layer_norm": False}, {"residual": False}])
def test_scanned_and_unrolled_agree(variant):
    scanned = ResidualMLP(MLPConfig(depth=12, width=16, **variant), output_size=4)
    unrolled = ResidualMLP(MLPConfig(depth=12, width=16, scan_blocks=False, **variant), output_size=4)
    x = jax.random.normal(jax.random.PRNGKey(1), (6, 9))
    p_scan = scanned.init(jax.random.PRNGKey(0), x)["params"]
    p_unrolled = unstack_block_params(p_scan)
    assert set(p_unrolled) == {"input", "head", "block_0", "block_1", "block_2"}
    # The unrolled module's own init has the same tree structure.
    own = unrolled.init(jax.random.PRNGKey(0), x)["params"]
    assert jax.tree.structure(own) == jax.tree.structure(p_unrolled)
    np.testing.assert_allclose(
        scanned.apply({"params": p_scan}, x), unrolled.apply({"params": p_unrolled}, x), rtol=1e-5, atol=1e-5
    )
    restacked = stack_block_params(p_unrolled, 3)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), restacked, p_scan))


def test_remat_gives_the_same_values_and_gradients():
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
    plain = ResidualMLP(MLPConfig(depth=8, width=16), output_size=2)
    remat = ResidualMLP(MLPConfig(depth=8, width=16, remat=True), output_size=2)
    params = plain.init(jax.random.PRNGKey(0), x)["params"]

    def loss(net, p):
        return jnp.sum(net.apply({"params": p}, x) ** 2)

    np.testing.assert_allclose(loss(plain, params), loss(remat, params), rtol=1e-6)
    g1 = jax.grad(lambda p: loss(plain, p))(params)
    g2 = jax.grad(lambda p: loss(remat, p))(params)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("depth", [2, 6, -4])
def test_depth_must_be_a_multiple_of_four(depth):
    with pytest.raises(ValueError, match=r"network.depth: .* multiple of 4"):
        MLPConfig(depth=depth)


def test_residual_block_adds_its_input():
    """With residual off and zero weights the trunk output is swish(LN(0)) = 0; with it on,
    the input layer's activation passes through."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3))
    for residual in (True, False):
        net = ResidualMLP(MLPConfig(depth=4, width=8, residual=residual), output_size=8)
        params = net.init(jax.random.PRNGKey(0), x)["params"]
        params["blocks"] = jax.tree.map(jnp.zeros_like, params["blocks"])
        params["head"] = {"kernel": jnp.eye(8), "bias": jnp.zeros(8)}
        y = net.apply({"params": params}, x)
        assert bool(jnp.any(jnp.abs(y) > 1e-3)) == residual


def test_actor_and_critic_shapes_with_independent_sizes():
    actor = Actor(MLPConfig(depth=8, width=32), action_size=3)
    critic = Critic(MLPConfig(depth=4, width=16), repr_dim=64)
    s, g, a = jnp.ones((5, 10)), jnp.ones((5, 2)), jnp.zeros((5, 3))
    pa = actor.init(jax.random.PRNGKey(0), s, g)["params"]
    pc = critic.init(jax.random.PRNGKey(1), s, a, g)["params"]
    mean, log_std = actor.apply({"params": pa}, s, g)
    assert mean.shape == (5, 3) and bool(jnp.all((log_std >= -5) & (log_std <= 2)))
    phi, psi = critic.apply({"params": pc}, s, a, g)
    assert phi.shape == psi.shape == (5, 64)
    assert pa["trunk"]["blocks"]["DenseNormAct_0"]["Dense_0"]["kernel"].shape == (2, 32, 32)
    assert pc["sa_encoder"]["blocks"]["DenseNormAct_0"]["Dense_0"]["kernel"].shape == (1, 16, 16)


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    mean = jnp.array([[0.3, -1.2]])
    log_std = jnp.array([[-0.5, 0.1]])
    action, logp = sample_action(mean, log_std, jax.random.PRNGKey(3))
    u = jnp.arctanh(action)
    std = jnp.exp(log_std)
    gauss = jnp.sum(-0.5 * ((u - mean) / std) ** 2 - jnp.log(std) - 0.5 * jnp.log(2 * jnp.pi))
    expected = gauss - jnp.sum(jnp.log(1 - action**2))
    np.testing.assert_allclose(logp[0], expected, rtol=1e-4)
    assert bool(jnp.all(jnp.abs(action) < 1))


@pytest.mark.parametrize("activation", ["swish", "relu"])
@pytest.mark.parametrize("layer_norm", [True, False])
def test_hand_written_backward_matches_autodiff(activation, layer_norm):
    """dense_norm_act's custom VJP against flax's Dense -> LayerNorm -> activation, differentiated by JAX."""
    import flax.linen as nn

    from crl.fused_layers import dense_norm_act
    from crl.networks import ACTIVATIONS

    keys = jax.random.split(jax.random.PRNGKey(3), 6)
    x = jax.random.normal(keys[0], (16, 12))
    kernel = jax.random.normal(keys[1], (12, 8)) / 3
    bias = jax.random.normal(keys[2], (8,))
    scale = 1 + 0.3 * jax.random.normal(keys[3], (8,))
    offset = 0.3 * jax.random.normal(keys[4], (8,))
    dy = jax.random.normal(keys[5], (16, 8))

    def reference(x, kernel, bias, scale, offset):
        h = nn.Dense(8).apply({"params": {"kernel": kernel, "bias": bias}}, x)
        if layer_norm:
            h = nn.LayerNorm().apply({"params": {"scale": scale, "bias": offset}}, h)
        return ACTIVATIONS[activation](h)

    def fused(x, kernel, bias, scale, offset):
        return dense_norm_act(x, kernel, bias, scale, offset, activation, layer_norm, jnp.float32)

    args = (x, kernel, bias, scale, offset)
    np.testing.assert_allclose(fused(*args), reference(*args), rtol=1e-5, atol=1e-5)
    want = jax.vjp(reference, *args)[1](dy)
    got = jax.vjp(fused, *args)[1](dy)
    names = ["x", "kernel", "bias", "scale", "offset"] if layer_norm else ["x", "kernel", "bias"]
    for name, g, w in zip(names, got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4, err_msg=name)
    if not layer_norm:  # scale and offset are constants then
        assert not np.any(got[3]) and not np.any(got[4])


@pytest.mark.parametrize("activation,layer_norm,residual", [("swish", True, True), ("relu", False, False)])
def test_residual_block_backward_matches_autodiff(activation, layer_norm, residual):
    """residual_block's packed-residual VJP against the same four layers differentiated by JAX."""
    from crl.fused_layers import _post, _pre, residual_block

    keys = jax.random.split(jax.random.PRNGKey(4), 18)
    width = 8
    x = jax.random.normal(keys[0], (16, width))
    dy = jax.random.normal(keys[1], (16, width))
    layers = tuple(
        (
            jax.random.normal(keys[2 + 4 * i], (width, width)) / 2,
            jax.random.normal(keys[3 + 4 * i], (width,)),
            1 + 0.3 * jax.random.normal(keys[4 + 4 * i], (width,)),
            0.3 * jax.random.normal(keys[5 + 4 * i], (width,)),
        )
        for i in range(4)
    )

    def reference(x, layers):  # plain JAX, differentiated automatically
        y = x
        for kernel, bias, scale, offset in layers:
            y = _post(_pre(y, kernel, bias, jnp.float32), scale, offset, activation, layer_norm, jnp.float32)
        return y + x if residual else y

    def fused(x, layers):
        return residual_block(x, layers, activation, layer_norm, residual, jnp.float32)

    np.testing.assert_allclose(fused(x, layers), reference(x, layers), rtol=1e-5, atol=1e-5)
    want = jax.vjp(reference, x, layers)[1](dy)
    got = jax.vjp(fused, x, layers)[1](dy)
    checked = want if layer_norm else (want[0], tuple(layer[:2] for layer in want[1]))
    got_checked = got if layer_norm else (got[0], tuple(layer[:2] for layer in got[1]))
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4), got_checked, checked)


def test_every_configurable_activation_has_a_fused_implementation():
    """network.activation accepts the names in ACTIVATIONS; the fused layers must compute each."""
    from crl.fused_layers import _activate
    from crl.networks import ACTIVATIONS

    z = jnp.linspace(-4.0, 4.0, 33)
    for name, fn in ACTIVATIONS.items():
        np.testing.assert_allclose(_activate(z, name), fn(z), rtol=1e-6, atol=1e-6, err_msg=name)


# -- network.log_prob: the tanh Jacobian's form --------------------------------------------


def _pre_tanh(mean, log_std, key):
    """u = mean + std * noise, drawn as sample_action draws it."""
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)


def test_paper_log_prob_is_the_papers_formula_and_exact_is_the_default():
    from crl.config import NetworkConfig
    from crl.networks import LOG_PROBS

    assert LOG_PROBS == ("exact", "paper")
    assert NetworkConfig().log_prob == "exact" and Actor(MLPConfig(), 2).log_prob == "exact"
    # From moderate to saturated pre-tanh values (|u| up to about 14).
    mean = jnp.array([[0.3, -1.2, 3.0, -5.0, 8.0, 12.0]])
    log_std = jnp.full_like(mean, -1.0)
    key = jax.random.PRNGKey(3)
    u = _pre_tanh(mean, log_std, key)
    std = jnp.exp(log_std)
    gauss = -0.5 * ((u - mean) / std) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi)
    action, paper = sample_action(mean, log_std, key, "paper")
    np.testing.assert_allclose(action, jnp.tanh(u))
    # The paper's code: logpdf(u) - log(1 - tanh(u)^2 + 1e-6), from the float32 action.
    np.testing.assert_allclose(paper[0], jnp.sum(gauss - jnp.log(1 - jnp.tanh(u) ** 2 + 1e-6)), rtol=1e-6)
    _, default = sample_action(mean, log_std, key)
    _, exact = sample_action(mean, log_std, key, "exact")
    np.testing.assert_array_equal(default, exact)
    # Per dimension: the forms differ by log(1 + 1e-6 / (1 - tanh(u)^2)) where float32 resolves
    # 1 - tanh(u)^2, and by many nats once the action saturates (the paper's stops at log 1e-6).
    exact_det = 2 * (jnp.log(2.0) - u - jax.nn.softplus(-2 * u))
    gap = (exact - paper)[0]
    np.testing.assert_allclose(gap, jnp.sum(jnp.log(1 - jnp.tanh(u) ** 2 + 1e-6) - exact_det), rtol=1e-5)
    moderate = jnp.abs(u) < 4
    np.testing.assert_allclose(
        (jnp.log(1 - jnp.tanh(u) ** 2 + 1e-6) - exact_det)[moderate],
        jnp.log1p(1e-6 / (1 - jnp.tanh(u) ** 2))[moderate], atol=2e-5,  # float32 rounding of log(...) ~ -6
    )
    assert gap > 5.0  # the saturated dimensions alone


def test_a_bad_log_prob_is_one_line_naming_the_key():
    from crl.config import ConfigError, from_dict

    with pytest.raises(ConfigError) as err:
        from_dict({"network": {"log_prob": "approx"}})
    text = str(err.value)
    assert text.startswith("network.log_prob: 'approx' is not allowed") and "exact, paper" in text
    assert "\n" not in text
    with pytest.raises(ValueError, match=r"^network.log_prob: 'approx' is not allowed; use one of exact, paper$"):
        sample_action(jnp.zeros((1, 2)), jnp.zeros((1, 2)), jax.random.PRNGKey(0), "approx")


def test_the_trainer_samples_and_scores_actions_with_the_configured_form():
    """network.log_prob reaches the actor loss (and the temperature loss, which reuses its
    log-probabilities): the Trainer's numbers are sample_action's with that form."""
    from crl.config import from_dict
    from crl.run import build_envs
    from crl.train import Trainer

    for form in ("exact", "paper"):
        cfg = from_dict({"env": {"id": "point_u_maze"}, "network": {"depth": 0, "width": 16, "log_prob": form}})
        trainer = Trainer(cfg, *build_envs(cfg))
        assert trainer.agent.actor.log_prob == form
        params = trainer.init_params(jax.random.PRNGKey(0))
        # Push the actor's means far out so that the two forms differ by whole nats.
        params["actor"]["trunk"]["head"]["bias"] = params["actor"]["trunk"]["head"]["bias"].at[:2].set(9.0)
        state = jax.random.normal(jax.random.PRNGKey(1), (8, trainer.state_dim))
        goal = jax.random.normal(jax.random.PRNGKey(2), (8, len(trainer.goal_indices)))
        batch = types.SimpleNamespace(state=state, goal=goal)  # what actor_loss reads of a Batch
        key = jax.random.PRNGKey(3)
        _, aux = trainer.agent.actor_loss(params["actor"], params["critic"], params["log_alpha"], batch, key)
        mean, log_std = trainer.agent.actor.apply({"params": params["actor"]}, state, goal)
        for other in ("exact", "paper"):
            expected = sample_action(mean, log_std, key, other)[1]
            same = bool(jnp.allclose(aux["log_prob"], expected, rtol=1e-6))
            assert same == (other == form), (form, other)
        action = trainer.policy_sample(params["actor"], state, goal, key)
        np.testing.assert_array_equal(action, sample_action(mean, log_std, key, form)[0])


def test_the_papers_task_configs_select_the_papers_log_prob():
    """conf/env files of the paper's tasks (those that set the paper's update schedule)
    compose to network.log_prob=paper; the point mazes keep the exact default."""
    import pathlib

    import yaml
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import crl.apps.train  # noqa: F401  registers the library defaults with Hydra
    from crl.config import from_dict

    conf = pathlib.Path(__file__).resolve().parents[1] / "conf"
    selected = {}
    with initialize_config_dir(config_dir=str(conf), version_base=None):
        for path in sorted((conf / "env").glob("*.yaml")):
            cfg = from_dict(OmegaConf.to_container(compose("config", overrides=[f"env={path.stem}"]), resolve=True))
            paper_task = yaml.safe_load(path.read_text()).get("train", {}).get("sgd_schedule") == "paper"
            selected[path.stem] = (cfg.network.log_prob, paper_task)
    assert all(form == ("paper" if paper_task else "exact") for form, paper_task in selected.values()), selected
    paper = {name for name, (form, _) in selected.items() if form == "paper"}
    assert {"ant", "ant_u_maze", "humanoid", "humanoid_hardest_maze", "arm_reach", "arm_binpick_hard"} <= paper
    assert not any(name.startswith("point_") for name in paper)
