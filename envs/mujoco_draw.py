"""MuJoCo offscreen frames for the MuJoCo-based families (Brax locomotion, the MJX arm).

The GL backend is MuJoCo's MUJOCO_GL: when unset, `egl` on a machine with an NVIDIA GPU
and `osmesa` (Debian's libosmesa6) otherwise; `configure_gl` must run before MuJoCo is
first imported (the painter calls it). Without a working backend the painter raises
`GLBackendError`, one line naming the backend, what is missing and what to install.

Swapping the GL context class after MuJoCo was imported uses a private internal of MuJoCo,
`mujoco.rendering.classic.gl_context.GLContext`; a MuJoCo that moved it fails there with
one line naming the version found and KNOWN_MUJOCO, the version known to work
(tests/test_private_internals.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import importlib.metadata
import os
import sys
import warnings

import numpy as np

from envs.colors import GOAL_COLOR

KNOWN_MUJOCO = "4.0.1"  # the MuJoCo (constraints.txt) whose rendering.classic.gl_context this patches


def _has_nvidia_gpu() -> bool:
    return os.path.exists("/dev/nvidia0") or os.path.exists("/proc/driver/nvidia/version")


class GLBackendError(RuntimeError):
    """No OpenGL context for MuJoCo's offscreen renderer (a missing library, no GPU, no display)."""


# Parts of a traceback that are MuJoCo's GL backend choice or PyOpenGL loading a library.
_GL_SOURCES = ("/OpenGL/", "/mujoco/osmesa/", "/mujoco/egl/", "/mujoco/glfw/", "/mujoco/rendering/classic/gl_context.py")


def library_found(name: str) -> bool:
    """Whether lib<name> can be loaded, looked up as PyOpenGL does (lib<name>.so[.N])."""
    if ctypes.util.find_library(name) is not None:
        return True
    for filename in [f"lib{name}.so", *(f"lib{name}.so.{i}" for i in range(10))]:
        try:
            ctypes.CDLL(filename)
            return True
        except OSError:
            continue
    return False


def no_gl_backend(err: BaseException | None = None) -> GLBackendError:
    """The one-line error for a failed GL context: the backend (MUJOCO_GL), why (a library
    not found, else `err`'s first line) and what to install."""
    backend = os.environ.get("MUJOCO_GL", "").strip().lower() or "glfw"
    library = {"osmesa": "OSMesa", "egl": "EGL"}.get(backend)
    if library and not library_found(library):
        cause = f"lib{library} not found"
    elif backend == "glfw" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        cause = "no display"
    elif err is not None:
        text = " ".join(str(err).split()).removesuffix(".")
        cause = f"{err.__class__.__name__}: {text}" if text else err.__class__.__name__
    else:
        cause = "no context"
    return GLBackendError(
        f"no OpenGL backend for offscreen rendering (MUJOCO_GL={backend}: {cause}); install Debian's libosmesa6 "
        "and set MUJOCO_GL=osmesa, or use EGL on a GPU machine (MUJOCO_GL=egl)"
    )


def as_gl_error(err: BaseException) -> GLBackendError | None:
    """`err` as a GLBackendError when it was raised while MuJoCo chose or created its GL
    context (e.g. `import mujoco` with MUJOCO_GL=osmesa and no libOSMesa fails inside
    PyOpenGL, wherever MuJoCo is first imported); None for any other error."""
    if isinstance(err, GLBackendError):
        return err
    tb = err.__traceback__
    while tb is not None:
        if any(part in tb.tb_frame.f_code.co_filename.replace(os.sep, "/") for part in _GL_SOURCES):
            return no_gl_backend(err)
        tb = tb.tb_next
    return None


def configure_gl() -> str:
    """Pick MuJoCo's headless GL backend (egl with an NVIDIA GPU, else osmesa) unless
    MUJOCO_GL is set or a display is available. MuJoCo fixes its GL context class at
    import, so when it is already imported the class is swapped for the chosen one."""
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        return chosen
    if os.environ.get("DISPLAY"):
        return "glfw"
    backend = "egl" if _has_nvidia_gpu() else "osmesa"
    os.environ["MUJOCO_GL"] = backend
    os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    if "mujoco" in sys.modules:
        gl_context_module().GLContext = importlib.import_module(f"mujoco.{backend}").GLContext
    return backend


def gl_context_module():
    """MuJoCo's private module that holds the GL context class its Renderer builds
    (`mujoco.rendering.classic.gl_context`), or one line naming the MuJoCo found and the
    one known to work when an upgrade moved it."""
    try:
        from mujoco.rendering.classic import (
            gl_context,  # lazy: MUJOCO_GL must be set before MuJoCo loads
        )
    except ImportError:
        gl_context = None
    if gl_context is None or not hasattr(gl_context, "GLContext"):
        raise ImportError(
            f"envs.mujoco_draw: mujoco {importlib.metadata.version('mujoco')} has no "
            "mujoco.rendering.classic.gl_context.GLContext (a private internal; known to work: "
            f"mujoco {KNOWN_MUJOCO}, as pinned in constraints.txt)"
        )
    return gl_context


class MujocoPainter:
    """Offscreen MuJoCo frames with the goal drawn as a translucent green sphere."""

    def __init__(self, model, goal_radius: float, width: int, height: int, camera: str | None = None,
                 follow: bool = False):
        """`model`: the MjModel to draw; `follow`: a walking robot, the camera keeps its
        torso (body 1) and the goal in view."""
        try:
            configure_gl()
            import mujoco  # lazy: after configure_gl, which MuJoCo reads at import
        except Exception as err:
            gl_error = as_gl_error(err)
            if gl_error is None:
                raise
            raise gl_error from None
        self.mujoco = mujoco
        self.model = model
        self.model.vis.global_.offwidth = max(int(self.model.vis.global_.offwidth), width)
        self.model.vis.global_.offheight = max(int(self.model.vis.global_.offheight), height)
        self.data = mujoco.MjData(self.model)
        try:
            with warnings.catch_warnings():  # GLFW warns before it fails without a display
                warnings.filterwarnings("ignore", module="glfw")
                self.renderer = mujoco.Renderer(self.model, height=height, width=width)
        except (mujoco.FatalError, ImportError, RuntimeError, AttributeError, OSError) as err:
            # The GL context: MuJoCo's GLContext of MUJOCO_GL, then mjr_makeContext on it.
            raise no_gl_backend(err) from None
        self.goal_radius = max(float(goal_radius), 0.03)
        self.goal_height = 0.25 * self.goal_radius
        self.follow = False
        if camera is not None:
            self.camera = camera
        else:
            self.camera = mujoco.MjvCamera()
            mujoco.mjv_defaultFreeCamera(self.model, self.camera)
            self.follow = follow
            self.camera.elevation = -55.0 if self.follow else self.camera.elevation
            self.camera.azimuth = 90.0 if self.follow else self.camera.azimuth

    def _goal_position(self, goal: np.ndarray) -> np.ndarray:
        goal = np.asarray(goal, np.float64).reshape(-1)
        if goal.size >= 3:
            return goal[:3]
        return np.array([goal[0], goal[1], self.goal_height])

    def frame(self, q: np.ndarray, goal: np.ndarray, mocap_pos: np.ndarray | None = None) -> np.ndarray:
        mj = self.mujoco
        self.data.qpos[:] = np.asarray(q, np.float64)[: self.model.nq]
        if mocap_pos is not None and self.model.nmocap:
            self.data.mocap_pos[:] = np.asarray(mocap_pos, np.float64).reshape(self.model.nmocap, 3)
        mj.mj_forward(self.model, self.data)
        if self.follow:
            torso = np.array(self.data.xpos[1])
            target = self._goal_position(goal)
            self.camera.lookat[:] = 0.5 * (torso + target)
            self.camera.lookat[2] = 0.5
            separation = float(np.linalg.norm(torso[:2] - target[:2]))
            self.camera.distance = 4.0 + 1.2 * separation
        self.renderer.update_scene(self.data, camera=self.camera)
        scene = self.renderer.scene
        if scene.ngeom < scene.maxgeom:
            mj.mjv_initGeom(
                scene.geoms[scene.ngeom],
                mj.mjtGeom.mjGEOM_SPHERE,
                np.array([self.goal_radius, 0.0, 0.0]),
                self._goal_position(goal),
                np.eye(3).ravel(),
                np.array([GOAL_COLOR[0] / 255, GOAL_COLOR[1] / 255, GOAL_COLOR[2] / 255, 0.6], np.float32),
            )
            scene.ngeom += 1
        return self.renderer.render().copy()

    def episode(self, pose: dict, goal: np.ndarray):
        """One frame per step of pose["q"] (and pose["mocap_pos"]: goal markers, bins)."""
        mocap_pos = pose.get("mocap_pos")
        for t, q in enumerate(pose["q"]):
            yield self.frame(q, goal, None if mocap_pos is None else mocap_pos[t])

    def close(self) -> None:
        self.renderer.close()
