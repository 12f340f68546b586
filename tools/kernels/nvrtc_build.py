#!/usr/bin/env python3
"""Compiles voxkit's kernels with NVRTC (no GPU, no CUDA toolkit: the pip wheels of scripts/cuda-tools.sh).

For every kernels/*.cu:
  - PTX for compute_80 -> kernels/ptx/<stem>.ptx (committed; embedded in the crate);
  - CUBIN for sm_80, sm_86, sm_89, sm_90 -> kernels/cubin/<stem>.sm_<arch>.cubin (committed; embedded:
    a GPU of the same major architecture loads them without JIT-compiling the PTX), compiled with
    -Xptxas=-v: registers, stack, spills and shared memory per entry per architecture ->
    kernels/RESOURCES.md (committed).
Fails when a kernel does not compile, or any entry spills or uses local memory (a stack frame) on any architecture.
With --check, writes nothing and also fails when the committed PTX, CUBINs or RESOURCES.md are stale.
Also compiles the emulator's feature kernels (tests/emugpu/kernels/features.cu) to
tests/emugpu/ptx/features.ptx, for running them on a GPU (tests/gpu_features.rs, scripts/gpu-check.sh).
Stdlib and ctypes only.
"""
import argparse
import ctypes
import os
import re
import sys
import tempfile

ARCHS = ["80", "86", "89", "90"]
PTX_ARCH = "compute_80"


def load_nvrtc():
    lib_dir = os.environ.get("VOXKIT_NVRTC_LIB_DIR")
    if not lib_dir:
        sys.exit("nvrtc_build: VOXKIT_NVRTC_LIB_DIR is not set (source scripts/cuda-tools.sh)")
    return ctypes.CDLL(os.path.join(lib_dir, "libnvrtc.so.12"))


class Nvrtc:
    def __init__(self):
        self.lib = load_nvrtc()
        self.lib.nvrtcGetErrorString.restype = ctypes.c_char_p

    def version(self):
        major, minor = ctypes.c_int(), ctypes.c_int()
        self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
        return f"{major.value}.{minor.value}"

    def compile(self, src, name, options, cubin):
        """Returns (ok, output bytes, log)."""
        lib = self.lib
        prog = ctypes.c_void_p()
        r = lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), name.encode(), 0, None, None)
        if r != 0:
            return False, b"", lib.nvrtcGetErrorString(r).decode()
        try:
            opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
            r = lib.nvrtcCompileProgram(prog, len(options), opts)
            n = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
            buf = ctypes.create_string_buffer(n.value)
            lib.nvrtcGetProgramLog(prog, buf)
            log = buf.value.decode(errors="replace")
            if r != 0:
                return False, b"", log
            get_size, get = (lib.nvrtcGetCUBINSize, lib.nvrtcGetCUBIN) if cubin else (lib.nvrtcGetPTXSize, lib.nvrtcGetPTX)
            get_size(prog, ctypes.byref(n))
            out = ctypes.create_string_buffer(n.value)
            get(prog, out)
            return True, (out.raw if cubin else out.value), log
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))


# ptxas -v, e.g.:
#   ptxas info    : Compiling entry function 'rms_norm_f32' for 'sm_80'
#   ptxas info    : Function properties for rms_norm_f32
#       0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
#   ptxas info    : Used 16 registers, 128 bytes smem, 384 bytes cmem[0]
def parse_resources(log):
    out = {}
    current = None
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            current = m.group(1)
            out[current] = {"registers": 0, "stack": 0, "spill_stores": 0, "spill_loads": 0, "smem": 0}
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            out[current].update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
        m = re.search(r"Used (\d+) registers", line)
        if m:
            out[current]["registers"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            out[current]["smem"] = int(s.group(1)) if s else 0
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="write nothing; fail when committed files are stale")
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    kdir = os.path.join(root, "kernels")
    include = os.environ.get("VOXKIT_CUDA_INCLUDE")
    if not include:
        sys.exit("nvrtc_build: VOXKIT_CUDA_INCLUDE is not set (source scripts/cuda-tools.sh)")
    nvrtc = Nvrtc()
    base_opts = ["--std=c++17", f"-I{kdir}", f"-I{include}"]
    sources = sorted(f for f in os.listdir(kdir) if f.endswith(".cu"))
    errors, ptx, cubins, rows = [], {}, {}, []
    for f in sources:
        stem = f[:-3]
        src = open(os.path.join(kdir, f), encoding="utf-8").read()
        ok, out, log = nvrtc.compile(src, f, base_opts + [f"--gpu-architecture={PTX_ARCH}"], cubin=False)
        if not ok:
            errors.append(f"kernels/{f} does not compile for {PTX_ARCH}:\n{log}")
            continue
        ptx[stem] = out
        for arch in ARCHS:
            ok, binary, log = nvrtc.compile(src, f, base_opts + [f"--gpu-architecture=sm_{arch}", "-Xptxas=-v"], cubin=True)
            if not ok:
                errors.append(f"kernels/{f} does not compile for sm_{arch}:\n{log}")
                continue
            cubins[f"{stem}.sm_{arch}.cubin"] = binary
            for entry, r in sorted(parse_resources(log).items()):
                rows.append((f, entry, arch, r))
                if r["spill_stores"] or r["spill_loads"]:
                    errors.append(f"{entry} (kernels/{f}) spills on sm_{arch}: {r['spill_stores']} bytes stored, {r['spill_loads']} loaded")
                elif r["stack"]:
                    errors.append(f"{entry} (kernels/{f}) uses {r['stack']} bytes of local memory (stack frame) on sm_{arch}")

    table = [
        "# Kernel resources",
        "",
        f"Generated by `bash scripts/kernels.sh` (NVRTC {nvrtc.version()}, options `--std=c++17`; PTX for `{PTX_ARCH}`,",
        f"resources from `-Xptxas=-v` CUBINs for {', '.join('sm_' + a for a in ARCHS)}). CI fails on a spill, a stack frame or a stale file.",
        "",
        "| file | entry | arch | registers | stack (B) | spill stores (B) | spill loads (B) | shared (B) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for f, entry, arch, r in rows:
        table.append(f"| {f} | `{entry}` | sm_{arch} | {r['registers']} | {r['stack']} | {r['spill_stores']} | {r['spill_loads']} | {r['smem']} |")
    resources = "\n".join(table) + "\n"

    for f, entry, arch, r in rows if not args.check else []:
        print(f"{entry:24} sm_{arch}  {r['registers']:3} regs  {r['stack']:4} B stack  {r['spill_stores'] + r['spill_loads']:4} B spills  {r['smem']:6} B smem")
    # The feature kernels of the emulator's tests, for calibration on a GPU.
    feat_src = os.path.join(root, "tests", "emugpu", "kernels", "features.cu")
    feat_ptx = os.path.join(root, "tests", "emugpu", "ptx", "features.ptx")
    # (Absent in a --root tree holding only kernels/: the gate's own test in scripts/emulator-check.sh.)
    if not os.path.exists(feat_src):
        pass
    elif not (compiled := nvrtc.compile(open(feat_src, encoding="utf-8").read(), "features.cu", base_opts + [f"--gpu-architecture={PTX_ARCH}"], cubin=False))[0]:
        errors.append(f"tests/emugpu/kernels/features.cu does not compile:\n{compiled[2]}")
    elif args.check:
        feat = compiled[1]
        if not os.path.exists(feat_ptx) or open(feat_ptx, "rb").read() != feat:
            errors.append("tests/emugpu/ptx/features.ptx is stale: run bash scripts/kernels.sh")
    elif not errors:
        os.makedirs(os.path.dirname(feat_ptx), exist_ok=True)
        open(feat_ptx, "wb").write(compiled[1])

    ptx_dir = os.path.join(kdir, "ptx")
    cubin_dir = os.path.join(kdir, "cubin")
    res_path = os.path.join(kdir, "RESOURCES.md")
    if args.check:
        committed = sorted(f[:-4] for f in os.listdir(ptx_dir) if f.endswith(".ptx")) if os.path.isdir(ptx_dir) else []
        for stem in sorted(set(committed) - set(ptx)):
            errors.append(f"kernels/ptx/{stem}.ptx has no kernels/{stem}.cu: remove it")
        for stem, data in sorted(ptx.items()):
            p = os.path.join(ptx_dir, stem + ".ptx")
            if not os.path.exists(p) or open(p, "rb").read() != data:
                errors.append(f"kernels/ptx/{stem}.ptx is stale: run bash scripts/kernels.sh")
        if not os.path.exists(res_path) or open(res_path, encoding="utf-8").read() != resources:
            errors.append("kernels/RESOURCES.md is stale: run bash scripts/kernels.sh")
        committed = sorted(os.listdir(cubin_dir)) if os.path.isdir(cubin_dir) else []
        for name in sorted(set(committed) - set(cubins)):
            errors.append(f"kernels/cubin/{name} has no kernel source: remove it")
        for name, data in sorted(cubins.items()):
            p = os.path.join(cubin_dir, name)
            if not os.path.exists(p) or open(p, "rb").read() != data:
                errors.append(f"kernels/cubin/{name} is stale: run bash scripts/kernels.sh")
    elif not errors:
        os.makedirs(ptx_dir, exist_ok=True)
        for f in os.listdir(ptx_dir):
            if f.endswith(".ptx") and f[:-4] not in ptx:
                os.remove(os.path.join(ptx_dir, f))
        for stem, data in ptx.items():
            open(os.path.join(ptx_dir, stem + ".ptx"), "wb").write(data)
        os.makedirs(cubin_dir, exist_ok=True)
        for f in os.listdir(cubin_dir):
            if f not in cubins:
                os.remove(os.path.join(cubin_dir, f))
        for name, data in cubins.items():
            open(os.path.join(cubin_dir, name), "wb").write(data)
        open(res_path, "w", encoding="utf-8").write(resources)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)
    print(f"{len(ptx)} kernel files, {len(rows) // len(ARCHS)} entries, {len(ARCHS)} architectures: compiled, no spills or stack"
          + (", committed files current" if args.check else ", written"))


if __name__ == "__main__":
    main()
