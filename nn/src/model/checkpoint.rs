//! Safetensors files of tensors and string metadata, read back with every tensor checked.
//!
//! A checkpoint on disk can be cut short or damaged; loading one must never hand NaN
//! weights to a model in silence. A [`Reader`] checks that each tensor asked for is present,
//! has the dtype and shape the model expects and holds finite values, and names the file
//! and the tensor when one does not.
//!
//! The crate's own `safetensors` dependency is another major version than candle's, so
//! tensors cross over as raw little-endian bytes ([`Tensor::write_bytes`],
//! [`Tensor::from_raw_buffer`]), not through candle's `View` implementation.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Shape, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::Metadata;
use safetensors::{Dtype, SafeTensors, View};

use crate::{Error, Result};

/// One tensor's bytes, as safetensors writes them.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn st_dtype(d: DType) -> Option<Dtype> {
    Some(match d {
        DType::U8 => Dtype::U8,
        DType::U32 => Dtype::U32,
        DType::I16 => Dtype::I16,
        DType::I32 => Dtype::I32,
        DType::I64 => Dtype::I64,
        DType::BF16 => Dtype::BF16,
        DType::F16 => Dtype::F16,
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        _ => return None,
    })
}

/// The metadata entry that holds [`payload_hash`] of the file's tensors.
const PAYLOAD_HASH: &str = "payload_hash";

/// Writes `tensors` and `metadata` to `path` (not atomically: callers write a temporary
/// file and rename it, see [`crate::files::write_with`]), with a hash of the tensors that
/// [`Reader::open`] checks.
pub fn write(path: &Path, tensors: &[(String, Tensor)], mut metadata: HashMap<String, String>) -> Result<()> {
    let mut raw = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let dtype = st_dtype(t.dtype())
            .ok_or_else(|| Error::invalid(format!("tensor `{name}`: cannot save dtype {:?}", t.dtype())))?;
        let mut data = Vec::with_capacity(t.elem_count() * t.dtype().size_in_bytes());
        t.write_bytes(&mut data)?;
        raw.push((name.as_str(), Raw { dtype, shape: t.dims().to_vec(), data }));
    }
    let hash = payload_hash(raw.iter().map(|(n, r)| (*n, r.dtype, &r.shape[..], &r.data[..])));
    metadata.insert(PAYLOAD_HASH.into(), hash);
    safetensors::serialize_to_file(raw.iter().map(|(n, r)| (*n, r)), Some(metadata), path)
        .map_err(|e| Error::external(format!("cannot write checkpoint {}", path.display()), e))
}

/// What a tensor read back must look like.
#[derive(Debug, Clone)]
pub struct Expected {
    pub dtype: DType,
    pub shape: Shape,
}

impl Expected {
    pub fn of(t: &Tensor) -> Self {
        Self { dtype: t.dtype(), shape: t.shape().clone() }
    }
}

/// A checkpoint file read into memory, its header parsed and checked.
pub struct Reader {
    path: PathBuf,
    bytes: Vec<u8>,
    header: usize,
    meta: Metadata,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (header, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| {
            Error::data(path, format!("not a complete safetensors file ({e}): the checkpoint is damaged"))
        })?;
        let reader = Self { path: path.to_owned(), bytes, header, meta };
        // A byte flipped on disk can leave every value finite and every shape right: only
        // the hash written with the tensors tells. (Files written before it have none.)
        if let Some(want) = reader.meta(PAYLOAD_HASH) {
            let start = 8 + reader.header;
            let tensors = reader.meta.tensors();
            let now = payload_hash(tensors.iter().map(|(name, info)| {
                let data = &reader.bytes[start + info.data_offsets.0..start + info.data_offsets.1];
                (name.as_str(), info.dtype, &info.shape[..], data)
            }));
            if now != want {
                return Err(Error::data(
                    path,
                    "its tensors do not match the hash written with them: the checkpoint is damaged \
                     (delete it to redo what it saved)",
                ));
            }
        }
        Ok(reader)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A `__metadata__` entry.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta.metadata().as_ref()?.get(key).map(String::as_str)
    }

    pub fn has(&self, name: &str) -> bool {
        self.meta.info(name).is_some()
    }

    /// Tensor `name` on `device`, refused unless it is present, of the `expected` dtype and
    /// shape, and finite.
    pub fn tensor(&self, name: &str, expected: &Expected, device: &Device) -> Result<Tensor> {
        let err = |msg: String| Error::data(&self.path, format!("tensor `{name}`: {msg}"));
        let info = self.meta.info(name).ok_or_else(|| err("missing".into()))?;
        let want = st_dtype(expected.dtype);
        if want != Some(info.dtype) {
            return Err(err(format!("dtype {:?}, the model's is {:?}", info.dtype, expected.dtype)));
        }
        if info.shape != expected.shape.dims() {
            return Err(err(format!("shape {:?}, the model's is {:?}", info.shape, expected.shape.dims())));
        }
        let start = 8 + self.header;
        let data = &self.bytes[start + info.data_offsets.0..start + info.data_offsets.1];
        // Checked on the CPU, before a copy to the device.
        let t = Tensor::from_raw_buffer(data, expected.dtype, &info.shape, &Device::Cpu)?;
        if let Some((i, v)) = first_non_finite(&t)? {
            return Err(err(format!(
                "element {i} is {v}: the checkpoint is damaged (delete it to redo what it saved)"
            )));
        }
        Ok(t.to_device(device)?)
    }
}

/// The hash a checkpoint file carries of its own tensors: each one's name, dtype, shape and
/// bytes, in name order (the order safetensors lays them out in is its own business).
fn payload_hash<'a>(tensors: impl Iterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>) -> String {
    let mut sorted: Vec<_> = tensors.collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut h = crate::hash::Fnv::new();
    for (name, dtype, shape, data) in sorted {
        h.bytes(name.as_bytes());
        h.word(name.len() as u64);
        h.bytes(format!("{dtype:?}").as_bytes());
        shape.iter().for_each(|&d| h.word(d as u64));
        h.word(data.len() as u64);
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            h.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        h.bytes(words.remainder());
    }
    format!("{:016x}", h.finish())
}

/// A content hash of `tensors` (FNV-1a over 8-byte words, [`crate::hash`]), in hex: each
/// tensor's name, dtype, shape and bytes, in the order given. Two lists of tensors hash
/// alike only when they would be written to the same safetensors payload, so a hash kept
/// beside a commit tells a file swapped or edited since from the one that was meant.
pub fn hash_tensors(tensors: &[(String, Tensor)]) -> Result<String> {
    let mut h = crate::hash::Fnv::new();
    let mut buf = Vec::new();
    for (name, t) in tensors {
        h.bytes(name.as_bytes());
        h.word(name.len() as u64);
        h.bytes(format!("{:?}", t.dtype()).as_bytes());
        for &d in t.dims() {
            h.word(d as u64);
        }
        buf.clear();
        t.write_bytes(&mut buf)?;
        h.word(buf.len() as u64);
        let mut words = buf.chunks_exact(8);
        for w in &mut words {
            h.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        h.bytes(words.remainder());
    }
    Ok(format!("{:016x}", h.finish()))
}

/// The first NaN or infinite value of a float tensor, with its flat index.
fn first_non_finite(t: &Tensor) -> Result<Option<(usize, f64)>> {
    let values: Vec<f64> = match t.dtype() {
        DType::F64 => t.flatten_all()?.to_vec1::<f64>()?,
        DType::F32 | DType::F16 | DType::BF16 => {
            let v = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            return Ok(v.iter().position(|x| !x.is_finite()).map(|i| (i, v[i] as f64)));
        }
        _ => return Ok(None),
    };
    Ok(values.iter().position(|x| !x.is_finite()).map(|i| (i, values[i])))
}

/// A ChaCha8 generator's whole state (seed, stream, position), for a checkpoint.
pub fn chacha_state(rng: &ChaCha8Rng) -> Vec<u8> {
    let mut out = rng.get_seed().to_vec();
    out.extend(rng.get_stream().to_le_bytes());
    out.extend(rng.get_word_pos().to_le_bytes());
    out
}

/// The generator [`chacha_state`] saved, at the same position.
pub fn chacha_from_state(state: &[u8]) -> Result<ChaCha8Rng> {
    if state.len() != 32 + 8 + 16 {
        return Err(Error::invalid(format!("a ChaCha8 state has 56 bytes, not {}", state.len())));
    }
    let seed: [u8; 32] = state[..32].try_into().expect("32 bytes");
    let stream = u64::from_le_bytes(state[32..40].try_into().expect("8 bytes"));
    let pos = u128::from_le_bytes(state[40..].try_into().expect("16 bytes"));
    let mut rng = ChaCha8Rng::from_seed(seed);
    rng.set_stream(stream);
    rng.set_word_pos(pos);
    Ok(rng)
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn a_generator_continues_where_it_was_saved() {
        let mut a = ChaCha8Rng::seed_from_u64(5);
        // An odd number of words, so the position is inside a block.
        for _ in 0..37 {
            a.random::<f32>();
        }
        let mut b = chacha_from_state(&from_hex(&to_hex(&chacha_state(&a))).unwrap()).unwrap();
        let (x, y): (Vec<u64>, Vec<u64>) = (0..100).map(|_| (a.random::<u64>(), b.random::<u64>())).unzip();
        assert_eq!(x, y);
    }

    #[test]
    fn the_tensor_hash_sees_a_value_a_name_and_a_shape() {
        let t = |v: &[f32]| Tensor::new(v, &Device::Cpu).unwrap();
        let base = [("a".to_owned(), t(&[1.0, 2.0, 3.0, 4.0]))];
        let h = hash_tensors(&base).unwrap();
        assert_eq!(h, hash_tensors(&[("a".to_owned(), t(&[1.0, 2.0, 3.0, 4.0]))]).unwrap());
        assert_ne!(h, hash_tensors(&[("a".to_owned(), t(&[1.0, 2.0, 3.0, 4.5]))]).unwrap());
        assert_ne!(h, hash_tensors(&[("b".to_owned(), t(&[1.0, 2.0, 3.0, 4.0]))]).unwrap());
        let square = t(&[1.0, 2.0, 3.0, 4.0]).reshape((2, 2)).unwrap();
        assert_ne!(h, hash_tensors(&[("a".to_owned(), square)]).unwrap());
    }

    #[test]
    fn tensors_round_trip_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        let good = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &Device::Cpu).unwrap();
        let bad = Tensor::new(&[1.0f32, f32::NAN], &Device::Cpu).unwrap();
        let meta = HashMap::from([("k".to_owned(), "v".to_owned())]);
        write(&path, &[("good".into(), good.clone()), ("bad".into(), bad.clone())], meta).unwrap();
        let r = Reader::open(&path).unwrap();
        assert_eq!(r.meta("k"), Some("v"));
        let back = r.tensor("good", &Expected::of(&good), &Device::Cpu).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), good.to_vec2::<f32>().unwrap());
        let e = r.tensor("bad", &Expected::of(&bad), &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("c.safetensors") && e.contains("`bad`") && e.contains("NaN"), "{e}");
        let wide = Expected { dtype: DType::F32, shape: Shape::from((2, 3)) };
        let e = r.tensor("good", &wide, &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("`good`: shape [2, 2], the model's is [2, 3]"), "{e}");
        let e = r.tensor("gone", &wide, &Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("`gone`: missing"), "{e}");
        // Cut short: refused as a whole.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let e = Reader::open(&path).err().unwrap().to_string();
        assert!(e.contains("damaged"), "{e}");
    }

    #[test]
    fn a_flipped_bit_that_leaves_every_value_finite_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        let w = Tensor::new(&[0.5f32, -1.25, 3.0, 7.5], &Device::Cpu).unwrap();
        write(&path, &[("w".into(), w.clone())], HashMap::new()).unwrap();
        assert!(Reader::open(&path).is_ok());
        // The lowest mantissa bit of the last value: still finite, right shape, wrong.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 4;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let e = Reader::open(&path).err().unwrap().to_string();
        assert!(e.contains("c.safetensors") && e.contains("do not match the hash written with them"), "{e}");
        // A file written before the hash existed still loads.
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let mut header = header.as_object().unwrap().clone();
        header.remove("__metadata__");
        let mut text = serde_json::to_string(&header).unwrap();
        while !text.len().is_multiple_of(8) {
            text.push(' ');
        }
        let mut old = (text.len() as u64).to_le_bytes().to_vec();
        old.extend(text.as_bytes());
        old.extend(&bytes[8 + n..]);
        std::fs::write(&path, &old).unwrap();
        assert!(Reader::open(&path).is_ok());
    }
}
