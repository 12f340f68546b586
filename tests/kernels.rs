//! Our kernels as the crate embeds them, without a driver: every kernel file is embedded, every
//! entry of the source is in its PTX with the same parameter count, launches check their arguments
//! against the PTX (the planted wrong-argument bug), and the driver probe never panics.

use std::path::Path;

use voxkit::backend::cuda::{DriverStatus, KernelArgs, KernelModule, MODULES, ParamClass, probe, ptx};

fn kernel_sources() -> Vec<(String, String)> {
    // (The working directory's kernels/ when the test binary runs elsewhere: scripts/gpu-check.sh.)
    let dir = [Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels"), Path::new("kernels").to_path_buf()]
        .into_iter()
        .find(|d| d.is_dir())
        .expect("the kernels/ folder");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    out
}

// `extern "C" __global__ void name(args…)` → (name, number of parameters).
fn source_entries(src: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (at, _) in src.match_indices("extern \"C\" __global__ void ") {
        let rest = &src[at + "extern \"C\" __global__ void ".len()..];
        let open = rest.find('(').unwrap();
        let close = rest.find(')').unwrap();
        let params = rest[open + 1..close].split(',').filter(|p| !p.trim().is_empty()).count();
        out.push((rest[..open].trim().to_string(), params));
    }
    out
}

#[test]
fn every_kernel_file_is_embedded_with_every_entry() {
    let sources = kernel_sources();
    let embedded: Vec<&str> = MODULES.iter().map(|m| m.name).collect();
    let files: Vec<&str> = sources.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(embedded, files, "src/backend/cuda/kernels.rs MODULES must list every kernels/*.cu");
    for (name, src) in &sources {
        let module = KernelModule::named(name).unwrap();
        let entries = module.entries();
        let wanted = source_entries(src);
        assert!(!wanted.is_empty(), "{name}.cu has no extern \"C\" __global__ entry");
        for (entry, params) in wanted {
            let e = entries
                .iter()
                .find(|e| e.name == entry)
                .unwrap_or_else(|| panic!("{entry} is not in kernels/ptx/{name}.ptx: run scripts/kernels.sh"));
            assert_eq!(e.params.len(), params, "{entry}: the PTX is stale (run scripts/kernels.sh)");
        }
    }
}

#[test]
fn ptx_signatures_are_read_with_sizes_and_kinds() {
    let e = KernelModule::named("norm").unwrap().entry("rms_norm_f32").unwrap();
    let kinds: Vec<(ParamClass, usize)> = e.params.iter().map(|p| (p.class, p.bytes)).collect();
    assert_eq!(
        kinds,
        [
            (ParamClass::Integer, 8),
            (ParamClass::Integer, 8),
            (ParamClass::Integer, 8),
            (ParamClass::Integer, 4),
            (ParamClass::Float, 4)
        ]
    );
    let by_value = ptx::entries(
        ".visible .entry k(\n\t.param .align 4 .b8 k_param_0[12],\n\t.param .u64 .ptr .global .align 4 k_param_1\n)\n{",
    );
    assert_eq!(by_value[0].params[0].class, ParamClass::Bytes);
    assert_eq!(by_value[0].params[0].bytes, 12);
    assert_eq!((by_value[0].params[1].class, by_value[0].params[1].bytes), (ParamClass::Integer, 8));
}

/// The planted bug the driver cannot see: an argument of the wrong size or kind.
#[test]
fn a_wrong_argument_is_refused_before_the_launch() {
    let e = KernelModule::named("norm").unwrap().entry("rms_norm_f32").unwrap();
    let mut right = KernelArgs::new();
    right.ptr(1).ptr(2).ptr(3).i32(64).f32(1e-6);
    right.check(&e).unwrap();

    let mut wide = KernelArgs::new();
    wide.ptr(1).ptr(2).ptr(3).i64(64).f32(1e-6);
    let err = wide.check(&e).unwrap_err().to_string();
    assert!(err.contains("argument 3 is 8 bytes") && err.contains("declares 4 bytes"), "{err}");

    let mut int_for_float = KernelArgs::new();
    int_for_float.ptr(1).ptr(2).ptr(3).i32(64).i32(0);
    let err = int_for_float.check(&e).unwrap_err().to_string();
    assert!(err.contains("argument 4") && err.contains("Float"), "{err}");

    let mut short = KernelArgs::new();
    short.ptr(1).ptr(2).ptr(3).i32(64);
    assert!(short.check(&e).unwrap_err().to_string().contains("4 arguments given, its PTX declares 5"));
}

#[test]
fn the_driver_needed_follows_the_ptx_isa() {
    for m in MODULES {
        assert_eq!(ptx::isa_version(m.ptx), Some(82), "{}: NVRTC 12.2 emits PTX ISA 8.2", m.name);
    }
    assert_eq!(voxkit::backend::cuda::kernels::required_driver_version(), 12020);
    assert_eq!(ptx::driver_for_isa(84), 12040);
}

/// Never panics; says Missing where the environment has no driver (CI: VOXKIT_EXPECT_DRIVER=missing).
#[test]
fn the_probe_reports_a_missing_driver() {
    let status = probe();
    match std::env::var("VOXKIT_EXPECT_DRIVER").as_deref() {
        Ok("missing") => assert_eq!(status, DriverStatus::Missing),
        Ok("ready") => assert!(matches!(status, DriverStatus::Ready { .. }), "{status:?}"),
        _ => eprintln!("driver: {status:?}"),
    }
}

/// Every module embeds a CUBIN for sm_80, sm_86, sm_89 and sm_90 (ELF images), and a GPU gets the
/// newest one of its major architecture not newer than itself; other GPUs take the PTX.
#[test]
fn cubins_are_embedded_and_chosen_by_architecture() {
    for m in MODULES {
        let sms: Vec<i32> = m.cubins.iter().map(|(sm, _)| *sm).collect();
        assert_eq!(sms, [80, 86, 89, 90], "{}", m.name);
        for (sm, bytes) in m.cubins {
            assert!(bytes.starts_with(b"\x7fELF") && bytes.len() > 1000, "{} sm_{sm} is not a CUBIN", m.name);
        }
        let pick = |cc| m.cubin_for(cc).map(|(sm, _)| sm);
        assert_eq!(pick((8, 0)), Some(80));
        assert_eq!(pick((8, 6)), Some(86));
        assert_eq!(pick((8, 7)), Some(86), "Orin runs the sm_86 CUBIN");
        assert_eq!(pick((8, 9)), Some(89));
        assert_eq!(pick((9, 0)), Some(90));
        assert_eq!(pick((10, 0)), None, "Blackwell JIT-compiles the PTX");
        assert_eq!(pick((7, 5)), None);
    }
}
