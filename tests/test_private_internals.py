"""The four private internals of other packages the code relies on, each behind one guard:
an upgrade that moves one fails at import or first use with one line naming the package,
the version found and the version known to work (constraints.txt's pin).

    jax._src.xla_bridge._backends                  envs/manipulation/xla_flags.py
    tensorboardX.event_file_writer.EventsWriter    crl/logger.py
    mujoco.rendering.classic.gl_context            envs/mujoco_draw.py
    MJX data._impl.contact                         envs/manipulation/physics.py

Each test removes the internal from the installed package (monkeypatch) and checks the line."""

import importlib.metadata
import pathlib
import re
import sys
import types

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def pinned(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)$", (REPO / "constraints.txt").read_text(), re.M | re.I)
    assert match, package
    return match.group(1)


def one_line(err: BaseException, package: str, known: str) -> None:
    text = str(err)
    assert "\n" not in text
    assert f"{package} {importlib.metadata.version(package)} has no" in text  # the version found
    assert f"known to work: {package} {known}" in text


def test_every_guard_knows_the_pinned_version():
    from crl.logger import KNOWN_TENSORBOARDX
    from envs.manipulation.physics import KNOWN_MJX
    from envs.manipulation.xla_flags import KNOWN_JAX
    from envs.mujoco_draw import KNOWN_MUJOCO

    assert (KNOWN_JAX, KNOWN_TENSORBOARDX, KNOWN_MUJOCO, KNOWN_MJX) == (
        pinned("jax"), pinned("tensorboardX"), pinned("mujoco"), pinned("mujoco-mjx"))


def test_jax_without_its_backends_table_fails_at_import_in_one_line(monkeypatch):
    from jax._src import xla_bridge

    from envs.manipulation import xla_flags

    assert xla_flags._backend_started() in (True, False)  # today's jax: it works
    monkeypatch.delattr(xla_bridge, "_backends")
    with pytest.raises(ImportError) as err:
        xla_flags._backend_started()
    one_line(err.value, "jax", xla_flags.KNOWN_JAX)
    assert "jax._src.xla_bridge._backends" in str(err.value)
    monkeypatch.setitem(sys.modules, "jax._src.xla_bridge", None)  # the module itself gone
    monkeypatch.delattr(sys.modules["jax._src"], "xla_bridge")
    with pytest.raises(ImportError, match=r"^envs.manipulation: jax \S+ has no jax._src.xla_bridge._backends"):
        xla_flags._backend_started()


def test_tensorboardx_without_its_events_writer_fails_at_first_use_in_one_line(monkeypatch, tmp_path):
    import tensorboardX.event_file_writer as event_file_writer

    from crl.logger import KNOWN_TENSORBOARDX, MetricsLogger, events_writer_class

    assert events_writer_class() is event_file_writer.EventsWriter
    monkeypatch.delattr(event_file_writer, "EventsWriter")
    with pytest.raises(ImportError) as err:
        MetricsLogger(tmp_path, tensorboard=True)
    one_line(err.value, "tensorboardX", KNOWN_TENSORBOARDX)
    MetricsLogger(tmp_path, tensorboard=False).log(1, {"eval/x": 1.0})  # without TensorBoard: unaffected
    # a writer that lost a method it is called with
    monkeypatch.setattr(event_file_writer, "EventsWriter", type("EventsWriter", (), {"flush": None, "close": None}),
                        raising=False)
    with pytest.raises(ImportError, match=r"^crl.logger: tensorboardX \S+ has no tensorboardX.event_file_writer"):
        events_writer_class()


def test_mujoco_without_its_gl_context_module_fails_at_first_use_in_one_line(monkeypatch):
    import mujoco.rendering.classic as classic

    from envs.mujoco_draw import KNOWN_MUJOCO, gl_context_module

    assert hasattr(gl_context_module(), "GLContext")
    monkeypatch.delattr(classic, "gl_context")
    monkeypatch.setitem(sys.modules, "mujoco.rendering.classic.gl_context", None)
    with pytest.raises(ImportError) as err:
        gl_context_module()
    one_line(err.value, "mujoco", KNOWN_MUJOCO)
    monkeypatch.setitem(sys.modules, "mujoco.rendering.classic.gl_context", types.ModuleType("gl_context"))
    with pytest.raises(ImportError, match=r"^envs.mujoco_draw: mujoco \S+ has no mujoco.rendering.classic.gl_context"):
        gl_context_module()  # the module without its GLContext class


def test_mjx_data_without_its_contacts_fails_at_first_use_in_one_line():
    import mujoco
    from mujoco import mjx

    from envs.manipulation.physics import KNOWN_MJX, mjx_contacts

    model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody></mujoco>")
    real = mjx_contacts(mjx.make_data(mjx.put_model(model)))  # today's MJX: it works
    assert real.geom.shape[-1] == 2 and real.dist.ndim == 1
    contact = types.SimpleNamespace(geom="pairs", dist="distances")
    assert mjx_contacts(types.SimpleNamespace(_impl=types.SimpleNamespace(contact=contact))) is contact
    assert mjx_contacts(types.SimpleNamespace(contact=contact)) is contact  # older MJX
    for moved in (types.SimpleNamespace(_impl=types.SimpleNamespace(contacts=contact)),
                  types.SimpleNamespace(_impl=types.SimpleNamespace(contact=types.SimpleNamespace(geom=1)))):
        with pytest.raises(AttributeError) as err:
            mjx_contacts(moved)
        one_line(err.value, "mujoco-mjx", KNOWN_MJX)
