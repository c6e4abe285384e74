//! Checks a model's GPU settings against the devices llama.cpp found, before loading: a
//! `main_gpu` that does not exist is an error; layers asked for without any GPU are run on
//! the CPU with a warning, as llama-server does.

use llama_cpp_2::{list_llama_ggml_backend_devices, LlamaBackendDeviceType};

/// A GPU as far as placement is concerned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Gpu {
    pub name: String,
    pub description: String,
    pub memory_total: usize,
}

/// What to tell the operator about where the layers go.
#[derive(Debug, PartialEq)]
pub(crate) enum Placement {
    Cpu,
    /// Layers were asked for but there is no GPU: they run on the CPU.
    NoGpu,
    Offload {
        gpu: Gpu,
        gpu_layers: u32,
    },
}

/// The GPUs llama.cpp can use in this build on this machine.
pub(crate) fn gpus() -> Vec<Gpu> {
    list_llama_ggml_backend_devices()
        .into_iter()
        .filter(|d| {
            matches!(
                d.device_type,
                LlamaBackendDeviceType::Gpu | LlamaBackendDeviceType::IntegratedGpu
            )
        })
        .map(|d| Gpu {
            name: d.name,
            description: d.description,
            memory_total: d.memory_total,
        })
        .collect()
}

/// Where the layers go; the error says why the settings cannot be met.
pub(crate) fn place(gpus: &[Gpu], gpu_layers: u32, main_gpu: i32) -> Result<Placement, String> {
    if gpu_layers == 0 {
        return Ok(Placement::Cpu);
    }
    if gpus.is_empty() {
        return Ok(Placement::NoGpu);
    }
    let listed = gpus
        .iter()
        .enumerate()
        .map(|(i, g)| format!("{i}: {} ({})", g.name, g.description))
        .collect::<Vec<_>>()
        .join(", ");
    match usize::try_from(main_gpu).ok().and_then(|i| gpus.get(i)) {
        Some(gpu) => Ok(Placement::Offload {
            gpu: gpu.clone(),
            gpu_layers,
        }),
        None => Err(format!(
            "main_gpu = {main_gpu} but this machine has {} GPU(s): {listed}",
            gpus.len()
        )),
    }
}

/// Logs where the model will run.
pub(crate) fn log(placement: &Placement) {
    match placement {
        Placement::Cpu => {}
        Placement::NoGpu => tracing::warn!(
            "gpu_layers is set but no usable GPU was found (a CPU-only llama.cpp, or no device or driver); running on the CPU"
        ),
        Placement::Offload { gpu, gpu_layers } => {
            let layers = if *gpu_layers == u32::MAX {
                "all".to_string()
            } else {
                gpu_layers.to_string()
            };
            tracing::info!(
                gpu = %gpu.name,
                device = %gpu.description,
                memory_gib = format!("{:.1}", gpu.memory_total as f64 / f64::from(1u32 << 30)),
                layers,
                "offloading layers to the GPU"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h200() -> Gpu {
        Gpu {
            name: "CUDA0".into(),
            description: "NVIDIA H200".into(),
            memory_total: 141 << 30,
        }
    }

    #[test]
    fn no_layers_is_the_cpu_whatever_the_devices() {
        assert_eq!(place(&[h200()], 0, 0).unwrap(), Placement::Cpu);
        assert_eq!(place(&[], 0, 5).unwrap(), Placement::Cpu);
    }

    #[test]
    fn layers_without_a_gpu_fall_back_to_the_cpu() {
        assert_eq!(place(&[], u32::MAX, 0).unwrap(), Placement::NoGpu);
    }

    #[test]
    fn main_gpu_picks_the_device() {
        let second = Gpu {
            name: "CUDA1".into(),
            ..h200()
        };
        assert_eq!(
            place(&[h200(), second.clone()], 10, 1).unwrap(),
            Placement::Offload {
                gpu: second,
                gpu_layers: 10
            }
        );
    }

    #[test]
    fn a_missing_main_gpu_is_an_error_listing_the_devices() {
        for main_gpu in [1, -1] {
            let err = place(&[h200()], 10, main_gpu).unwrap_err();
            assert!(
                err.contains(&format!("main_gpu = {main_gpu}"))
                    && err.contains("0: CUDA0 (NVIDIA H200)"),
                "{err}"
            );
        }
    }

    /// This build on this machine: a CPU-only build lists no GPU.
    #[test]
    #[cfg(not(any(feature = "cuda", feature = "vulkan")))]
    fn a_cpu_only_build_lists_no_gpu() {
        crate::llama::load::backend().unwrap();
        assert!(gpus().is_empty());
    }
}
