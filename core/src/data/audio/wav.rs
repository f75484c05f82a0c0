//! Decoding one wav file into mono samples in [-1, 1] at the pipeline's rate, whole or
//! only the crop its row keeps (with the few samples the resampling filter reads around it).

use std::cell::Cell;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::config::Align;
use super::resample::{Resampler, placement};
use crate::error::Invalid;

/// How [`read_wav`] converts a file.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    pub sample_rate: u32,
    pub resample: bool,
}

/// A decoded file: mono samples at the target rate, in [-1, 1].
#[derive(Debug, Clone)]
pub struct Wav {
    pub samples: Vec<f32>,
    /// The file's own rate and channel count.
    pub source_rate: u32,
    pub channels: u16,
    /// Whether float samples outside [-1, 1] were clipped.
    pub clipped: bool,
    pub resampled: bool,
}

/// The highest file rate that is resampled. Each output sample of a conversion from `r` Hz
/// reads about 32·r/`sample_rate` input samples, so a header claiming gigahertz would turn
/// one file into hours of arithmetic.
pub const MAX_SOURCE_RATE: u32 = 768_000;

/// Decodes one wav file whole; the error is the reason, without the path.
pub fn read_wav(path: &Path, opts: &ReadOptions) -> std::result::Result<Wav, Invalid> {
    let (file, meta) = crate::data::open_regular(path).map_err(|e| e.reason())?;
    decode(file, meta.len(), opts, None)
}

/// Reads one wav file into a row of `length` samples laid out as [`fit_length`] lays out the
/// whole decoded file, but decodes and resamples only the samples that the row keeps, and
/// those the resampling filter reads around them: half a second cut from a ten-minute
/// recording costs half a second of work. `samples` is the row.
///
/// [`fit_length`]: super::fit_length
pub fn read_wav_fitted(
    path: &Path,
    opts: &ReadOptions,
    length: usize,
    align: Align,
) -> std::result::Result<Wav, Invalid> {
    let (file, meta) = crate::data::open_regular(path).map_err(|e| e.reason())?;
    decode(file, meta.len(), opts, Some((length, align)))
}

/// Decodes wav bytes (see [`read_wav`]).
pub fn decode_wav(bytes: &[u8], opts: &ReadOptions) -> std::result::Result<Wav, Invalid> {
    decode(std::io::Cursor::new(bytes), bytes.len() as u64, opts, None)
}

/// [`read_wav_fitted`] over `len` bytes of any seekable reader.
pub fn decode_wav_fitted<R: Read + Seek>(
    reader: R,
    len: u64,
    opts: &ReadOptions,
    length: usize,
    align: Align,
) -> std::result::Result<Wav, Invalid> {
    decode(reader, len, opts, Some((length, align)))
}

/// A reader that counts the bytes hound takes, which is how the start of the sample data
/// and the bytes per sample are found (hound keeps both to itself).
struct Counted<'c, R> {
    inner: R,
    pos: &'c Cell<u64>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos.set(self.pos.get() + n as u64);
        Ok(n)
    }
}

fn decode<R: Read + Seek>(
    reader: R,
    len: u64,
    opts: &ReadOptions,
    fit: Option<(usize, Align)>,
) -> std::result::Result<Wav, Invalid> {
    if len == 0 {
        return Err("empty file (0 bytes), not a wav file".into());
    }
    let io = |e: std::io::Error| format!("cannot read: {e}");
    let mut reader = BufReader::new(reader);
    let mut magic = [0u8; 4];
    if len >= 4 {
        reader.read_exact(&mut magic).map_err(io)?;
        if &magic != b"RIFF" {
            return Err("not a valid wav file: it does not start with a RIFF header".into());
        }
        reader.seek(SeekFrom::Start(0)).map_err(io)?;
    }
    let pos = Cell::new(0u64);
    let mut wav = hound::WavReader::new(Counted { inner: &mut reader, pos: &pos }).map_err(|e| match e {
        hound::Error::Unsupported => {
            "unsupported wav encoding (Tempered reads 8/16/24/32-bit integer and 32-bit float PCM)".into()
        }
        // hound reports a header cut short as an I/O error "Failed to read enough bytes".
        hound::Error::IoError(_) => format!("truncated or not a wav file: the header ends early ({e})"),
        other => format!("not a valid wav file: {other}"),
    })?;
    let spec = wav.spec();
    let data_start = pos.get();
    let channels = spec.channels.max(1) as usize;
    let declared = wav.len() as usize;
    let float = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => true,
        (hound::SampleFormat::Int, 8 | 16 | 24 | 32) => false,
        (format, bits) => {
            return Err(format!(
                "unsupported encoding: {bits}-bit {format:?} (Tempered reads 8/16/24/32-bit integer and 32-bit float PCM)"
            ).into());
        }
    };
    if declared == 0 {
        return Err("holds no samples".into());
    }
    let first = if float {
        wav.samples::<f32>().next().map(|s| s.map(drop))
    } else {
        wav.samples::<i32>().next().map(|s| s.map(drop))
    };
    match first {
        Some(Ok(())) => {}
        Some(Err(hound::Error::IoError(e))) => {
            return Err(format!(
                "truncated or corrupt: read 0 of the {declared} samples the header declares ({e})"
            )
            .into());
        }
        Some(Err(e)) => {
            return Err(format!(
                "unsupported wav encoding: {}-bit samples stored in a way hound cannot read ({e})",
                spec.bits_per_sample
            )
            .into());
        }
        None => return Err("holds no samples".into()),
    }
    // 24-bit samples come in 3- or 4-byte containers: the first sample tells which.
    let bytes_per_sample = pos.get() - data_start;
    let held = (len.saturating_sub(data_start) / bytes_per_sample.max(1)) as usize;
    if held < declared {
        return Err(format!(
            "truncated: the header declares {declared} samples ({} bytes), the file holds {held}",
            declared as u64 * bytes_per_sample
        )
        .into());
    }
    if !declared.is_multiple_of(channels) {
        return Err(format!("truncated: {declared} samples do not fill {channels}-channel frames").into());
    }
    let frames = declared / channels;

    let resampled = spec.sample_rate != opts.sample_rate;
    if resampled {
        if !opts.resample {
            return Err(format!(
                "sample rate {} Hz, but the pipeline wants {} Hz ([data] resample = true converts it)",
                spec.sample_rate, opts.sample_rate
            )
            .into());
        }
        if spec.sample_rate == 0 {
            return Err("the header gives a sample rate of 0 Hz".into());
        }
        if spec.sample_rate > MAX_SOURCE_RATE {
            return Err(format!(
                "the header gives a sample rate of {} Hz; Tempered resamples files of at most {MAX_SOURCE_RATE} Hz",
                spec.sample_rate
            ).into());
        }
    }
    let filter = resampled.then(|| Resampler::new(frames, spec.sample_rate, opts.sample_rate));
    let n_out = filter.as_ref().map_or(frames, |f| f.n_out);
    let (row_len, (src, dst, k)) = match fit {
        Some((length, align)) => (length, placement(n_out, length, align)),
        None => (n_out, (0, 0, n_out)),
    };
    // The input frames that outputs src..src + k read: the filter's taps move forward with
    // the output index, so the first output's first tap and the last one's last tap bound them.
    let (first_frame, end_frame) = match &filter {
        None => (src, src + k),
        Some(f) => (f.taps(src).0, f.taps(src + k - 1).1 + 1),
    };
    let end_frame = end_frame.max(first_frame);

    reader
        .seek(SeekFrom::Start(data_start + (first_frame * channels) as u64 * bytes_per_sample))
        .map_err(io)?;
    let scale = 1.0 / (1u64 << (spec.bits_per_sample.min(32) - 1)) as f64;
    let bps = bytes_per_sample as u16;
    let mut mono: Vec<f32> = Vec::with_capacity(end_frame - first_frame);
    let mut frame: Vec<f32> = Vec::with_capacity(channels);
    let mut clipped = false;
    for f in first_frame..end_frame {
        frame.clear();
        for c in 0..channels {
            let at = f * channels + c;
            let truncated = |e: hound::Error| {
                format!(
                    "truncated or corrupt: cannot read sample {at} of the {declared} the header declares ({e})"
                )
            };
            let v = if float {
                let v =
                    <f32 as hound::Sample>::read(&mut reader, spec.sample_format, bps, spec.bits_per_sample)
                        .map_err(truncated)?;
                if !v.is_finite() {
                    return Err(format!("sample {at} is {v}: corrupt float data").into());
                }
                clipped |= !(-1.0..=1.0).contains(&v);
                v.clamp(-1.0, 1.0)
            } else {
                let v =
                    <i32 as hound::Sample>::read(&mut reader, spec.sample_format, bps, spec.bits_per_sample)
                        .map_err(truncated)?;
                (v as f64 * scale) as f32
            };
            frame.push(v);
        }
        mono.push(if channels == 1 { frame[0] } else { frame.iter().sum::<f32>() / channels as f32 });
    }

    let mut samples = vec![0.0f32; row_len];
    match &filter {
        None => samples[dst..dst + k].copy_from_slice(&mono[..k]),
        Some(f) => {
            for (j, out) in samples[dst..dst + k].iter_mut().enumerate() {
                *out = f.output(&mono, first_frame, src + j);
            }
        }
    }
    Ok(Wav { samples, source_rate: spec.sample_rate, channels: spec.channels, clipped, resampled })
}

/// The canonical 44-byte header of `data_len` bytes of 16-bit mono PCM at `rate`, whatever
/// follows it. The loader's tests build with it what no encoder writes: a header that lies
/// about its length or rate, a ten-minute file left sparse on disk.
pub fn pcm16_header(rate: u32, data_len: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&data_len.wrapping_add(36).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * 2).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::tests::{spec, write};
    use super::*;

    const OPTS: ReadOptions = ReadOptions { sample_rate: 8000, resample: false };
    #[test]
    fn integer_formats_scale_to_unit_range() {
        let dir = tempfile::tempdir().unwrap();
        for bits in [8u16, 16, 24, 32] {
            let path = dir.path().join(format!("i{bits}.wav"));
            let full = (1i64 << (bits - 1)) as f64;
            write(&path, spec(1, 8000, bits, false), |w| {
                for v in [0.5, -0.5, 0.25, -1.0] {
                    w.write_sample((v * full) as i32).unwrap();
                }
            });
            let wav = read_wav(&path, &OPTS).unwrap();
            assert_eq!(wav.samples, vec![0.5, -0.5, 0.25, -1.0], "{bits}-bit");
        }
    }

    #[test]
    fn float_is_read_and_clipped_and_stereo_is_mixed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.wav");
        write(&path, spec(2, 8000, 32, true), |w| {
            for v in [0.5f32, 0.25, -0.5, 1.5] {
                w.write_sample(v).unwrap();
            }
        });
        let wav = read_wav(&path, &OPTS).unwrap();
        assert_eq!(wav.samples, vec![0.375, 0.25]);
        assert!(wav.clipped);
        assert_eq!(wav.channels, 2);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        assert!(read_wav(&empty, &OPTS).unwrap_err().contains("empty file"));
        let text = dir.path().join("text.wav");
        std::fs::write(&text, b"this is not a wav file at all, just some text").unwrap();
        assert!(read_wav(&text, &OPTS).unwrap_err().contains("not a valid wav file"));
        let good = dir.path().join("good.wav");
        write(&good, spec(1, 8000, 16, false), |w| (0..1000).for_each(|i| w.write_sample(i as i16).unwrap()));
        let bytes = std::fs::read(&good).unwrap();
        let cut = decode_wav(&bytes[..bytes.len() - 500], &OPTS).unwrap_err();
        assert!(cut.contains("truncated"), "{cut}");
        let head = decode_wav(&bytes[..20], &OPTS).unwrap_err();
        assert!(head.contains("truncated or not a wav"), "{head}");
        let silent = dir.path().join("none.wav");
        write(&silent, spec(1, 8000, 16, false), |_| {});
        assert!(read_wav(&silent, &OPTS).unwrap_err().contains("no samples"));
        let fast = dir.path().join("fast.wav");
        write(&fast, spec(1, 16000, 16, false), |w| (0..1600).for_each(|_| w.write_sample(0i16).unwrap()));
        let e = read_wav(&fast, &OPTS).unwrap_err();
        assert!(e.contains("16000 Hz") && e.contains("resample = true"), "{e}");
        let ok = read_wav(&fast, &ReadOptions { sample_rate: 8000, resample: true }).unwrap();
        assert_eq!(ok.samples.len(), 800);
        assert!(ok.resampled);
    }

    /// The loader as it was before crops were read alone: decode the whole file, mix it,
    /// resample all of it, then trim. Kept verbatim as what the new path must match to the bit.
    mod reference {
        use super::super::{Align, ReadOptions};

        /// The whole file at the target rate.
        pub fn whole(bytes: &[u8], opts: &ReadOptions) -> Vec<f32> {
            let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
            let spec = reader.spec();
            let channels = spec.channels as usize;
            let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, 32) => {
                    reader.samples::<f32>().map(|s| s.unwrap().clamp(-1.0, 1.0)).collect()
                }
                (_, bits) => {
                    let scale = 1.0 / (1u64 << (bits - 1)) as f64;
                    reader.samples::<i32>().map(|s| (s.unwrap() as f64 * scale) as f32).collect()
                }
            };
            let mono: Vec<f32> = if channels == 1 {
                interleaved
            } else {
                interleaved.chunks_exact(channels).map(|f| f.iter().sum::<f32>() / channels as f32).collect()
            };
            if spec.sample_rate != opts.sample_rate {
                resample(&mono, spec.sample_rate, opts.sample_rate)
            } else {
                mono
            }
        }

        pub fn row(whole: &[f32], length: usize, align: Align) -> Vec<f32> {
            let mut out = vec![0.0; length];
            fit_length(whole, &mut out, align);
            out
        }

        fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
            if from == to || x.is_empty() {
                return x.to_vec();
            }
            let ratio = to as f64 / from as f64;
            let n_out = ((x.len() as f64 * ratio).round() as usize).max(1);
            let fc = 0.5 * ratio.min(1.0);
            const ZEROS: f64 = 16.0;
            let half = ZEROS / (2.0 * fc);
            let mut out = Vec::with_capacity(n_out);
            for n in 0..n_out {
                let p = n as f64 / ratio;
                let lo = ((p - half).ceil().max(0.0)) as usize;
                let hi = ((p + half).floor() as usize).min(x.len() - 1);
                let (mut acc, mut norm) = (0.0f64, 0.0f64);
                for (k, &v) in x.iter().enumerate().take(hi + 1).skip(lo) {
                    let t = k as f64 - p;
                    let arg = 2.0 * fc * t;
                    let sinc = if arg.abs() < 1e-12 {
                        1.0
                    } else {
                        (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
                    };
                    let window = 0.5 + 0.5 * (std::f64::consts::PI * t / half).cos();
                    let h = sinc * window;
                    acc += h * v as f64;
                    norm += h;
                }
                let v = if norm.abs() > 1e-9 { acc / norm } else { 0.0 };
                out.push((v as f32).clamp(-1.0, 1.0));
            }
            out
        }

        fn fit_length(x: &[f32], out: &mut [f32], align: Align) {
            let (n, len) = (x.len(), out.len());
            out.fill(0.0);
            let (src, dst) = match align {
                Align::Start => (0, 0),
                Align::Center if n > len => ((n - len) / 2, 0),
                Align::Center => (0, (len - n) / 2),
            };
            let k = (n - src).min(len - dst);
            out[dst..dst + k].copy_from_slice(&x[src..src + k]);
        }
    }

    fn bits(x: &[f32]) -> Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    fn assert_same_rows(path: &Path, opts: ReadOptions, lengths: &[usize]) {
        let whole = reference::whole(&std::fs::read(path).unwrap(), &opts);
        for &length in lengths {
            for align in [Align::Center, Align::Start] {
                let new = read_wav_fitted(path, &opts, length, align).unwrap().samples;
                let old = reference::row(&whole, length, align);
                assert!(
                    bits(&new) == bits(&old),
                    "{}: {opts:?}, length {length}, {align:?}: the crop differs from the whole-file path",
                    path.display()
                );
            }
        }
    }

    fn fsdd(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/fsdd/recordings").join(name)
    }

    #[test]
    fn fitted_rows_match_the_whole_file_path_on_fsdd() {
        // The longest recording (2.3 s: trimmed to 8000) and short ones (padded).
        for name in ["9_theo_16.wav", "0_george_0.wav", "3_jackson_12.wav", "7_yweweler_49.wav"] {
            let path = fsdd(name);
            assert_same_rows(
                &path,
                ReadOptions { sample_rate: 8000, resample: false },
                &[8000, 4000, 1, 30000],
            );
            for rate in [16000, 11025, 4000, 3000] {
                assert_same_rows(&path, ReadOptions { sample_rate: rate, resample: true }, &[8000, 4000, 1]);
            }
        }
    }

    #[test]
    fn fitted_rows_match_the_whole_file_path_on_long_synthetic_wavs() {
        let dir = tempfile::tempdir().unwrap();
        let signal = |i: usize, rate: u32| {
            let t = i as f64 / rate as f64;
            0.4 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + 0.3 * (2.0 * std::f64::consts::PI * 5000.0 * t).sin()
                + 0.2 * (((i * 7919) % 1000) as f64 / 500.0 - 1.0)
        };
        // 12 s of 44.1 kHz stereo, 16-bit.
        let long = dir.path().join("long.wav");
        write(&long, spec(2, 44100, 16, false), |w| {
            for i in 0..44100 * 12 {
                let v = signal(i, 44100);
                w.write_sample((v * 32767.0) as i16).unwrap();
                w.write_sample((-v * 16000.0) as i16).unwrap();
            }
        });
        assert_same_rows(&long, ReadOptions { sample_rate: 8000, resample: true }, &[4000, 8000, 200_000]);
        assert_same_rows(&long, ReadOptions { sample_rate: 44100, resample: false }, &[22050, 1_000_000]);
        // 24-bit mono at 22.05 kHz and 32-bit float at 48 kHz (values past ±1 are clipped).
        let i24 = dir.path().join("i24.wav");
        write(&i24, spec(1, 22050, 24, false), |w| {
            (0..22050 * 5).for_each(|i| w.write_sample((signal(i, 22050) * 8_000_000.0) as i32).unwrap())
        });
        assert_same_rows(&i24, ReadOptions { sample_rate: 8000, resample: true }, &[4000, 8000]);
        let f32s = dir.path().join("f32.wav");
        write(&f32s, spec(1, 48000, 32, true), |w| {
            (0..48000 * 5).for_each(|i| w.write_sample((signal(i, 48000) * 1.4) as f32).unwrap())
        });
        assert_same_rows(&f32s, ReadOptions { sample_rate: 16000, resample: true }, &[4000, 16000]);
        // The whole-file reader is the same path with nothing cut.
        let whole = read_wav(&long, &ReadOptions { sample_rate: 8000, resample: true }).unwrap().samples;
        let row = read_wav_fitted(
            &long,
            &ReadOptions { sample_rate: 8000, resample: true },
            whole.len(),
            Align::Start,
        )
        .unwrap()
        .samples;
        assert_eq!(bits(&whole), bits(&row));
    }

    /// Counts the bytes read through it.
    struct Counting<R> {
        inner: R,
        read: u64,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += n as u64;
            Ok(n)
        }
    }

    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    #[test]
    fn a_crop_of_a_long_file_reads_only_what_it_keeps() {
        // Ten minutes at 44.1 kHz (53 MB) cut to half a second at 8 kHz.
        let frames = 44100u32 * 600;
        let mut bytes = pcm16_header(44100, frames * 2);
        bytes.resize(bytes.len() + frames as usize * 2, 0);
        let len = bytes.len() as u64;
        let mut counting = Counting { inner: std::io::Cursor::new(bytes), read: 0 };
        let opts = ReadOptions { sample_rate: 8000, resample: true };
        let wav = decode_wav_fitted(&mut counting, len, &opts, 4000, Align::Center).unwrap();
        assert_eq!(wav.samples.len(), 4000);
        // 0.5 s of 44.1 kHz 16-bit is 44 KB; the filter adds 2 × 89 samples.
        assert!(counting.read < 128 * 1024, "read {} bytes of {len}", counting.read);
    }

    #[test]
    fn a_header_claiming_gigabytes_is_truncated_not_allocated() {
        let mut bytes = pcm16_header(8000, 0xFFFF_FFF0);
        bytes.extend_from_slice(&[0u8; 100]);
        let e = decode_wav(&bytes, &OPTS).unwrap_err();
        assert!(
            e.contains("truncated: the header declares 2147483640 samples") && e.contains("holds 50"),
            "{e}"
        );
        let e =
            decode_wav_fitted(std::io::Cursor::new(&bytes), bytes.len() as u64, &OPTS, 8000, Align::Center)
                .unwrap_err();
        assert!(e.contains("truncated"), "{e}");
    }

    #[test]
    fn absurd_source_rates_are_refused_when_resampling() {
        let mut bytes = pcm16_header(4_000_000_000 / 2, 200);
        bytes.extend_from_slice(&[0u8; 200]);
        let e = decode_wav(&bytes, &ReadOptions { sample_rate: 8000, resample: true }).unwrap_err();
        assert!(e.contains("at most 768000 Hz"), "{e}");
    }
}
