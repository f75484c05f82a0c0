//! Tensor plumbing below every layer: the f32 slice behind a CPU tensor, as the
//! hand-written kernels (models) and the fused optimiser (trainer) read and write it.

use candle_core::{CpuStorage, Layout};

/// What a custom op is handed, as one f32 slice: CPU storage under a contiguous layout
/// (every op of ours is given contiguous tensors); `op` names the op in the error otherwise.
pub(crate) fn cpu_f32<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("{op}: contiguous f32 input expected"),
    }
}

/// [`cpu_f32`] for the storage an in-place op writes.
pub(crate) fn cpu_f32_mut<'a>(
    s: &'a mut CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("{op}: contiguous f32 input expected"),
    }
}
