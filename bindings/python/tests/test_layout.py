"""The ctypes structs and constants match include/voxkit.h, as C compiles it and as the library
reports it. A wrong field type or order would make the library read garbage (or refuse the
struct with VOX_ERR_STRUCT_SIZE): these tests catch it before that."""

import ctypes
import os
import re
import shutil
import subprocess

import pytest

import voxkit
from voxkit import _abi
from voxkit._structs import init_struct
from conftest import REPO, missing

HEADER = REPO / "include" / "voxkit.h"


def _compiler():
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    missing("no C compiler (cc, gcc, clang; or set CC) to compile include/voxkit.h")


def _c_program():
    """Prints every mirrored struct's size and field offsets, and every #define VOX_* value."""
    lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "voxkit.h"', "int main(void) {"]
    for struct in _abi.STRUCTS:
        name = struct.__name__
        lines.append(f'printf("{name} %zu\\n", sizeof({name}));')
        for field, _ in struct._fields_:
            lines.append(f'printf("{name}.{field} %zu\\n", offsetof({name}, {field}));')
    for const in re.findall(r"^#define (VOX_\w+) ", HEADER.read_text(), re.M):
        lines.append(f'printf("{const} %lld\\n", (long long)({const}));')
    lines += ["return 0;", "}"]
    return "\n".join(lines)


def _python_layout():
    layout = {}
    for struct in _abi.STRUCTS:
        name = struct.__name__
        layout[name] = ctypes.sizeof(struct)
        for field, _ in struct._fields_:
            layout[f"{name}.{field}"] = getattr(struct, field).offset
    return layout


def test_structs_and_constants_match_the_compiled_header(tmp_path):
    cc = _compiler()
    src, exe = tmp_path / "layout.c", tmp_path / "layout"
    src.write_text(_c_program())
    subprocess.run([cc, "-std=c99", "-I", str(HEADER.parent), str(src), "-o", str(exe)],
                   check=True)
    printed = dict(line.rsplit(" ", 1) for line in
                   subprocess.run([str(exe)], check=True, capture_output=True,
                                  text=True).stdout.splitlines())
    c_values = {key: int(value) for key, value in printed.items()}
    ours = _python_layout()
    layout_diff = {k: (c_values[k], v) for k, v in ours.items() if c_values[k] != v}
    assert not layout_diff, f"(C, ctypes) differ: {layout_diff}"
    ours_const = {name: getattr(voxkit, name, None) for name in c_values if name not in ours}
    ours_const["VOX_ABI_VERSION"] = voxkit.ABI_VERSION
    const_diff = {k: (c_values[k], v) for k, v in ours_const.items() if c_values[k] != v}
    assert not const_diff, f"(header, binding) differ: {const_diff}"
    print(f"layout: {len(ours)} sizes and offsets, {len(ours_const)} constants match {HEADER.name}")


def test_every_header_struct_is_mirrored():
    declared = set(re.findall(r"^typedef struct (Vox\w+) \{", HEADER.read_text(), re.M))
    mirrored = {s.__name__ for s in _abi.STRUCTS}
    # Cloned voices are not wrapped (see the package's README section).
    assert declared - mirrored == {"VoxVoiceRequest"}


def test_every_function_used_is_declared_in_the_header():
    declared = set(re.findall(r"\b(vox_\w+)\(", HEADER.read_text()))
    used = set(voxkit._lib._FUNCTIONS)
    assert used <= declared
    # Cloned voices are not wrapped: everything else is.
    assert declared - used == {"vox_voice_request_init", "vox_voice_create", "vox_voice_release",
                               "vox_voice_save", "vox_voice_load"}


@pytest.mark.parametrize("struct, init", [
    (_abi.VoxEngineConfig, "vox_engine_config_init"),
    (_abi.VoxTtsRequest, "vox_tts_request_init"),
    (_abi.VoxAsrRequest, "vox_asr_request_init"),
])
def test_init_writes_our_struct_size(native, struct, init):
    """Without a compiler: *_init reports the library's sizeof, which must be ours."""
    scratch = (ctypes.c_uint64 * 64)()
    assert getattr(native, init)(ctypes.byref(scratch)) == voxkit.VOX_OK
    if native.vox_abi_version() == voxkit.ABI_VERSION:
        assert ctypes.c_uint32.from_buffer(scratch).value == ctypes.sizeof(struct)
    assert init_struct(struct, init).struct_size == ctypes.sizeof(struct)


def test_output_structs_report_our_size(engine):
    """vox_poll, vox_get_timings and vox_engine_stats write the library's own size back."""
    with engine.tts("Sizes.", max_new_tokens=2) as job:
        job.wait(60)
        native = voxkit._lib.lib()
        for struct, call in ((_abi.VoxJobInfo, lambda p, s: native.vox_poll(p, job.id, s)),
                             (_abi.VoxTimings, lambda p, s: native.vox_get_timings(p, job.id, s)),
                             (_abi.VoxEngineStats, native.vox_engine_stats)):
            value = _abi.sized(struct)
            with engine._handle.use() as ptr:
                assert call(ptr, ctypes.byref(value)) == voxkit.VOX_OK
            assert value.struct_size == ctypes.sizeof(struct), struct.__name__


def test_a_wrong_struct_size_is_refused(engine):
    """What a layout mismatch looks like from the library's side: VOX_ERR_STRUCT_SIZE."""
    request = init_struct(_abi.VoxTtsRequest, "vox_tts_request_init")
    request.text = b"Hello."
    request.struct_size = 4
    job_id = _abi.VoxJobId()
    with engine._handle.use() as ptr:
        status = voxkit._lib.lib().vox_tts_submit(ptr, ctypes.byref(request), ctypes.byref(job_id))
    assert status == voxkit.VOX_ERR_STRUCT_SIZE
