//! `voxkit devices`: the CUDA driver and GPUs this machine offers, and what this build does with them.

use voxkit::engine::devices::{DeviceReport, DriverStatus, report};

use crate::Fail;
use crate::ui::Ui;

fn version(v: i32) -> String {
    format!("{}.{}", v / 1000, v % 1000 / 10)
}

pub fn devices(_ui: &Ui) -> Result<(), Fail> {
    let DeviceReport { driver, gpus, auto, required_driver } = report();
    match driver {
        DriverStatus::Missing => println!("CUDA driver: none found (libcuda is not on the library path)"),
        DriverStatus::Failed(why) => println!("CUDA driver: present, but it did not start: {why}"),
        DriverStatus::TooOld { version: v, required } => {
            println!("CUDA driver: {} — too old: voxkit's kernels need {} or newer", version(v), version(required))
        }
        DriverStatus::Ready { version: v, devices } => {
            println!("CUDA driver: {} ({devices} device{})", version(v), if devices == 1 { "" } else { "s" })
        }
    }
    for g in &gpus {
        println!(
            "  cuda:{}  {}  sm_{}{}  {:.1} GiB",
            g.ordinal,
            g.name,
            g.capability.0,
            g.capability.1,
            g.memory_bytes as f64 / (1u64 << 30) as f64
        );
    }
    println!("kernels: PTX for compute_80, needs CUDA driver {} or newer", version(required_driver));
    match auto {
        Ok(g) => println!("inference (--device auto): cuda:{} ({})", g.ordinal, g.name),
        Err(why) => println!("inference (--device auto): the CPU — {why}"),
    }
    Ok(())
}
