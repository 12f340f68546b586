"""Loading the library: $VOXKIT_LIBRARY is final, and an older ABI is refused by name.
Each case runs in a fresh interpreter: the library is loaded once per process."""

import os
import shutil
import subprocess
import sys

import voxkit


def _python(code, **env):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(voxkit.__file__)), **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)


def test_missing_library_path(tmp_path):
    done = _python("import voxkit; voxkit.Engine()", VOXKIT_LIBRARY=str(tmp_path / "nope.so"))
    assert done.returncode != 0 and "VOXKIT_LIBRARY" in done.stderr and "nope.so" in done.stderr


def test_an_older_abi_is_refused(native):
    # Pretend the binding needs a newer ABI than the library has.
    done = _python("import voxkit._abi as a; a.ABI_VERSION += 1\n"
                   "import voxkit; voxkit.Engine()")
    assert done.returncode != 0
    assert f"implements C ABI {voxkit.abi_version()}; this binding needs" in done.stderr


def test_library_next_to_the_package(native, tmp_path):
    """Without $VOXKIT_LIBRARY, a library shipped inside the package folder is found."""
    package = tmp_path / "voxkit"
    shutil.copytree(os.path.dirname(voxkit.__file__), package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    os.symlink(native._name, package / "libvoxkit.so")
    env = {k: v for k, v in os.environ.items() if k != "VOXKIT_LIBRARY"}
    env["PYTHONPATH"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", "import voxkit, voxkit._lib as l; "
                           "print(l.lib()._name, voxkit.abi_version())"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(package / "libvoxkit.so"), str(voxkit.abi_version())]
