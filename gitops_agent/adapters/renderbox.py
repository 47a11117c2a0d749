"""The box a renderer process runs in: a scratch environment, a time limit and an output cap.

What the box gives a renderer (kustomize today) and why:

- **no inherited environment**: only ``PATH``, ``HOME``, ``TMPDIR``, ``XDG_*`` and the locale, all
  pointing into a scratch directory removed afterwards. The agent's ``GIT_TOKEN``, ``KUBECONFIG``,
  GitHub token or anything else it was started with never reach a render.
- **no network** unless the environment allows remote prefixes: ``PATH`` is an empty directory (so
  kustomize finds no ``git`` to clone with) and every proxy variable points at a closed port on
  loopback (so Go's HTTP client cannot fetch a URL). The prefixes are also checked before the
  render starts (``core.render_box``); this is the second fence, for what a scan could miss.
- **a time limit**: the renderer is started in a session of its own and the whole process group is
  killed when the limit passes.
- **an output cap**: stdout is copied in chunks into the caller's file and the process group is
  killed the moment the cap is passed, so no more than the cap is ever held or written.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from gitops_agent.core.render_box import RenderLimits
from gitops_agent.errors import RenderError

#: where proxies point when a render may not use the network: the discard port, closed on loopback
CLOSED_PROXY = "http://127.0.0.1:9"
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
STDERR_KEPT_BYTES = 64 * 1024
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Finished:
    """How a renderer process ended: its exit status and the start of its stderr."""

    returncode: int
    text: bytes


def environment(scratch: Path, *, network: bool) -> dict[str, str]:
    """The whole environment of a render: nothing inherited, everything inside ``scratch``."""
    dirs = {name: scratch / name for name in ("home", "tmp", "config", "cache", "data", "plugins", "bin")}
    for directory in dirs.values():
        directory.mkdir(parents=True, exist_ok=True)
    env = {
        "HOME": str(dirs["home"]),
        "TMPDIR": str(dirs["tmp"]),
        "XDG_CONFIG_HOME": str(dirs["config"]),
        "XDG_CACHE_HOME": str(dirs["cache"]),
        "XDG_DATA_HOME": str(dirs["data"]),
        "KUSTOMIZE_PLUGIN_HOME": str(dirs["plugins"]),  # empty: no legacy plugin to find
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PATH": str(dirs["bin"]),  # empty: no git, no helm, nothing to exec
    }
    if network:
        return {**env, **_network(env)}
    return {**env, **dict.fromkeys(_PROXY_VARS, CLOSED_PROXY), "NO_PROXY": "", "no_proxy": ""}


def _network(env: dict[str, str]) -> dict[str, str]:
    """What a render that may fetch allowed remotes needs: git on PATH, git's own config ignored."""
    git = shutil.which("git")
    path = str(Path(git).parent) if git else env["PATH"]
    return {
        "PATH": path,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ASKPASS": "/bin/false",
    }


def run(
    argv: Sequence[str], *, cwd: Path, env: dict[str, str], out: BinaryIO, limits: RenderLimits, label: str
) -> Finished:
    """Run ``argv`` copying its stdout into ``out``; RenderError (the process group killed) when it
    runs past ``limits.timeout_s`` or writes more than ``limits.max_output_bytes``."""
    deadline = time.monotonic() + limits.timeout_s
    try:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        raise RenderError(f"{label}: cannot run {argv[0]}: {exc.strerror}") from None
    assert proc.stdout is not None and proc.stderr is not None  # PIPE was asked for
    stderr = _Tail(proc.stderr)
    try:
        _copy_capped(proc.stdout, out, deadline, limits, label, argv)
        returncode = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise _timed_out(label, argv, limits) from None
    finally:
        if proc.poll() is None:
            _kill_group(proc)
        proc.wait()
        proc.stdout.close()
        stderr.join()
    return Finished(returncode, stderr.kept())


def _copy_capped(
    stdout: IO[bytes], out: BinaryIO, deadline: float, limits: RenderLimits, label: str, argv: Sequence[str]
) -> None:
    """Copy until EOF; never more than the cap, never past the deadline."""
    total = 0
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _timed_out(label, argv, limits)
            if not selector.select(left):
                continue
            chunk = os.read(stdout.fileno(), _CHUNK)
            if not chunk:
                return
            total += len(chunk)
            if total > limits.max_output_bytes:
                raise RenderError(
                    f"{label}: the render's output passed the limit of {_size(limits.max_output_bytes)} "
                    "(render.max_output in the agent config); stopped it there, nothing applied"
                )
            out.write(chunk)


def _timed_out(label: str, argv: Sequence[str], limits: RenderLimits) -> RenderError:
    """Names what ran (``kubectl kustomize``, ``helm template``, ``helm pull``): all render in the box."""
    command = " ".join([Path(argv[0]).name, *[a for a in argv[1:2] if not a.startswith("-")]])
    return RenderError(
        f"{label}: {command} timed out after {limits.timeout_s:g}s (render.timeout in the agent "
        "config); stopped it, nothing applied"
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the renderer and anything it started (git, a plugin): they share its session."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(proc.pid, signal.SIGKILL)


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB" if n >= 1024 * 1024 else f"{n} bytes"


class _Tail:
    """Reads a stderr pipe to its end on a thread, keeping only its first bytes."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe
        self._kept = bytearray()
        self._thread = threading.Thread(target=self._read, name="render-stderr", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with self._pipe:
            while chunk := os.read(self._pipe.fileno(), _CHUNK):
                if len(self._kept) < STDERR_KEPT_BYTES:
                    self._kept.extend(chunk[: STDERR_KEPT_BYTES - len(self._kept)])

    def join(self) -> None:
        self._thread.join(timeout=5)

    def kept(self) -> bytes:
        return bytes(self._kept)
