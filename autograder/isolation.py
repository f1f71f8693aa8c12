"""The sandbox a sealed worker runs in: bubblewrap's mount, PID and network namespaces.

Inside, a worker sees the Python installation (read-only, with any installed copy of the
course hidden), the model files (read-only), the course's package copy made for grading (no
solutions, no authoring tools), its own scratch folder, an empty /tmp and nothing else: not
the hidden references, the instructor's course folder (submissions, gradebook), the home
folder, other processes (a PID namespace of its own) or the network. Where the grader runs as
root, each worker also runs as a user of its own (`WORKER_IDS`), so two workers cannot read
each other's scratch folders or signal the process that forks them.

Bubblewrap (Debian's `bubblewrap`) runs as root, or as any user where the kernel allows
unprivileged user namespaces. Where it cannot run, sealed grading refuses to start unless the
instructor allows grading without isolation, and says so in every verdict.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

WORKER_IDS = range(61000, 65000)  # user and group ids of workers, where the grader is root
ALLOW_ENV_VAR = "COURSE_ALLOW_UNISOLATED"
COURSE_PACKAGES = ("autograder", "readheads", "solutions")
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
                "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/fonts")
NOT_ISOLATED = ("graded WITHOUT isolation: this notebook's code could read the hidden "
                "references and the solutions")


class IsolationUnavailable(RuntimeError):
    """Sealed grading cannot isolate workers here; the message says how to fix it."""


def as_root() -> bool:
    return os.geteuid() == 0


@functools.cache
def problem() -> str | None:
    """Why workers cannot be isolated on this machine (None: they can)."""
    if not sys.platform.startswith("linux"):
        return f"workers are isolated with Linux namespaces; this is {sys.platform}"
    if not shutil.which("bwrap"):
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    probe = subprocess.run(command([sys.executable, "-I", "-c", "pass"], read_only=[], writable=[]),
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return (f"bubblewrap cannot create namespaces here ({probe.stderr.strip()[-300:]}); "
                "run the grader as root or allow unprivileged user namespaces "
                "(sysctl kernel.unprivileged_userns_clone=1)")
    return None


def require(allow_unisolated: bool) -> bool:
    """Whether workers are isolated; raises where they cannot be and that was not allowed."""
    reason = problem()
    if reason is None:
        return True
    if allow_unisolated or os.environ.get(ALLOW_ENV_VAR) == "1":
        return False
    raise IsolationUnavailable(
        f"Sealed grading needs isolated workers and {reason}. To grade anyway, knowing that a "
        f"submission could then read the hidden references and the solutions, pass "
        f"--allow-unisolated (nbgrader: c.SealedGrading.allow_unisolated = True; or set "
        f"{ALLOW_ENV_VAR}=1); every verdict will say it was not isolated.")


def command(argv: list[str], *, read_only: list[Path], writable: list[Path],
            workdir: Path | None = None) -> list[str]:
    """`argv` inside a new sandbox that shows `read_only` and `writable` folders (at their
    own paths) besides the system and Python, and nothing else of this machine."""
    args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid",
            "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
            "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    if as_root():  # keep what the forking process needs to give each worker a user of its own
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_KILL"]
    else:
        args += ["--unshare-user"]
    for path in SYSTEM:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in SYSTEM_FILES:
        args += ["--ro-bind-try", path, path]
    mounted = [*_python_folders(), *map(Path, read_only), *map(Path, writable)]
    for folder in _folders_leading_to(mounted):  # bubblewrap would make them 0700
        args += ["--perms", "0755", "--dir", str(folder)]
    for path in _python_folders() + [Path(p) for p in read_only]:
        args += ["--ro-bind", str(path), str(path)]
    for path in _installed_course():
        args += ["--tmpfs", str(path)]
    for path in writable:
        args += ["--bind", str(path), str(path)]
    if workdir:
        args += ["--chdir", str(workdir)]
    return args + ["--", *argv]


def _folders_leading_to(mounted: list[Path]) -> list[Path]:
    """The folders above the mounted ones that are not themselves inside a mount, parents
    first (the system's folders are mounted whole; /tmp is the sandbox's own)."""
    above = {parent for path in mounted for parent in path.parents
             if parent not in (Path("/"), Path("/tmp"))}
    inside = [Path(p) for p in SYSTEM] + mounted
    return sorted((f for f in above if not any(f.is_relative_to(m) for m in inside)),
                  key=lambda f: len(f.parts))


def _python_folders() -> list[Path]:
    """The interpreter's installation and the environment's (a virtual environment's) folder."""
    folders = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(),
               Path(sys.executable).resolve().parent}
    return sorted(f for f in folders if not any(f != o and f.is_relative_to(o) for o in folders))


def _installed_course() -> list[Path]:
    """Copies of the course's packages inside the Python folders (a wheel install), hidden."""
    found = []
    for name in COURSE_PACKAGES:
        spec = importlib.util.find_spec(name)
        for location in (spec.submodule_search_locations or []) if spec else []:
            location = Path(location).resolve()
            if any(location.is_relative_to(f) for f in _python_folders()):
                found.append(location)
    return found


def model_files(model_names) -> list[Path]:
    """Folders the course's model loaders read for these models, each made and cached first
    (read-only in the sandbox, so nothing graded can change the models later graders load)."""
    from huggingface_hub import constants

    from readheads.models import ATTENTION_WEIGHTS_ENV_VAR, TOKENIZER_ENV_VAR, checkpoint
    from readheads.paths import cache_dir

    for name in model_names:
        checkpoint(name)
    folders = [cache_dir() / "models", Path(constants.HF_HUB_CACHE)]
    for variable in (TOKENIZER_ENV_VAR, ATTENTION_WEIGHTS_ENV_VAR):
        if os.environ.get(variable):
            path = Path(os.environ[variable]).expanduser().resolve()
            folders.append(path if path.is_dir() else path.parent)
    return [f.resolve() for f in folders if f.exists()]
