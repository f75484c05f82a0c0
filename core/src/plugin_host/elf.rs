//! Checking a library before the dynamic loader maps it: `dlopen` maps a library's
//! segments straight from the file, and touching a mapped page past the end of a truncated
//! file raises SIGBUS, killing the process. A FIFO would block the loader's `open`.

use std::path::Path;

use crate::{Error, Result};

/// Platforms whose dynamic loader maps ELF files.
const ELF_HOST: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_os = "solaris"
));

/// Refusing `path` before the loader sees it.
fn refuse(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::plugin(path.display().to_string(), format!("cannot load: {msg}"))
}

/// Checks, without loading it, that `path` can be handed to the dynamic loader without
/// crashing or blocking the process: it is a regular file (a FIFO would block the loader's
/// `open`), it can be read, and on ELF platforms [`check_elf`] finds every byte the loader
/// will map inside the file. `dlopen` maps a library's segments straight from the file, and
/// touching a mapped page past the end of a truncated file raises SIGBUS.
pub(super) fn check_library(path: &Path) -> Result<()> {
    // `metadata` only stats the path: a FIFO is never opened.
    let meta = std::fs::metadata(path).map_err(|e| refuse(path, format_args!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(refuse(path, format_args!("not a regular file: it is {}", file_kind(&meta.file_type()))));
    }
    let mut file =
        std::fs::File::open(path).map_err(|e| refuse(path, format_args!("cannot read it: {e}")))?;
    // What was opened is what gets checked, even if the path changed in between.
    let meta = file.metadata().map_err(|e| refuse(path, format_args!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(refuse(path, format_args!("not a regular file: it is {}", file_kind(&meta.file_type()))));
    }
    if ELF_HOST {
        check_elf(&mut file, meta.len(), path)?;
    }
    Ok(())
}

fn file_kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() { "a directory" } else { "something other than a file" }
}

/// The layout of an ELF file's headers: 32- or 64-bit, little- or big-endian.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ElfLayout {
    wide: bool,
    big: bool,
}

impl ElfLayout {
    /// What this host's loader accepts.
    const HOST: ElfLayout =
        ElfLayout { wide: cfg!(target_pointer_width = "64"), big: cfg!(target_endian = "big") };

    fn header_size(self) -> usize {
        if self.wide { 64 } else { 52 }
    }

    fn program_header_size(self) -> usize {
        if self.wide { 56 } else { 32 }
    }

    fn section_header_size(self) -> usize {
        if self.wide { 64 } else { 40 }
    }

    fn class_name(self) -> &'static str {
        if self.wide { "64-bit" } else { "32-bit" }
    }

    fn order_name(self) -> &'static str {
        if self.big { "big-endian" } else { "little-endian" }
    }

    /// The `N`-byte unsigned integer at `at`. Callers slice buffers of the size they read.
    fn int<const N: usize>(self, b: &[u8], at: usize) -> u64 {
        let mut bytes: [u8; N] = b[at..at + N].try_into().expect("the caller read enough bytes");
        if self.big {
            bytes.reverse();
        }
        bytes.iter().rev().fold(0, |acc, &x| (acc << 8) | u64::from(x))
    }

    fn half(self, b: &[u8], at: usize) -> u64 {
        self.int::<2>(b, at)
    }

    fn word(self, b: &[u8], at: usize) -> u64 {
        self.int::<4>(b, at)
    }

    /// An address or offset: 4 bytes in a 32-bit file, 8 in a 64-bit one; `at` is
    /// `(32-bit place, 64-bit place)`.
    fn addr(self, b: &[u8], at: (usize, usize)) -> u64 {
        if self.wide { self.int::<8>(b, at.1) } else { self.int::<4>(b, at.0) }
    }

    /// A 32-bit field whose place differs between the classes.
    fn word_at(self, b: &[u8], at: (usize, usize)) -> u64 {
        self.word(b, if self.wide { at.1 } else { at.0 })
    }

    fn half_at(self, b: &[u8], at: (usize, usize)) -> u64 {
        self.half(b, if self.wide { at.1 } else { at.0 })
    }
}

/// Reads `buf.len()` bytes at `offset`.
fn read_at(
    file: &mut (impl std::io::Read + std::io::Seek),
    offset: u64,
    buf: &mut [u8],
) -> std::io::Result<()> {
    file.seek(std::io::SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// Checks an ELF library of `len` bytes from its headers alone: the magic number, the class
/// and byte order this host loads, and that the program header table, every segment's
/// bytes (`p_offset + p_filesz`) and the section header table lie within the file. A file
/// shorter than an ELF header is left to the loader, which reads (never maps) that much
/// and gives its own reason ("file too short").
fn check_elf(file: &mut (impl std::io::Read + std::io::Seek), len: u64, path: &Path) -> Result<()> {
    let host = ElfLayout::HOST;
    let header_size = host.header_size();
    if len < header_size as u64 {
        return Ok(());
    }
    let unreadable = |e: std::io::Error| refuse(path, format_args!("cannot read it: {e}"));
    let truncated = |what: String, end: u64| {
        refuse(path, format_args!("truncated: {what} ends at byte {end}, the file has {len} bytes"))
    };
    let mut header = [0u8; 64];
    let header = &mut header[..header_size];
    read_at(file, 0, header).map_err(unreadable)?;
    if header[..4] != *b"\x7fELF" {
        let start: Vec<String> = header[..4].iter().map(|b| format!("{b:02x}")).collect();
        return Err(refuse(
            path,
            format_args!(
                "not an ELF library: it starts with {}, not 7f 45 4c 46 (\\x7fELF)",
                start.join(" ")
            ),
        ));
    }
    let wide = match header[4] {
        1 => false,
        2 => true,
        c => return Err(refuse(path, format_args!("not a valid ELF library: unknown ELF class {c}"))),
    };
    let big = match header[5] {
        1 => false,
        2 => true,
        d => return Err(refuse(path, format_args!("not a valid ELF library: unknown byte order {d}"))),
    };
    let elf = ElfLayout { wide, big };
    if elf.wide != host.wide {
        return Err(refuse(
            path,
            format_args!("a {} library, and this engine is {}", elf.class_name(), host.class_name()),
        ));
    }
    if elf.big != host.big {
        return Err(refuse(
            path,
            format_args!("a {} library, and this engine is {}", elf.order_name(), host.order_name()),
        ));
    }
    let ph_offset = elf.addr(header, (28, 32));
    let sh_offset = elf.addr(header, (32, 40));
    let ph_entry = elf.half_at(header, (42, 54));
    let mut ph_count = elf.half_at(header, (44, 56));
    let sh_entry = elf.half_at(header, (46, 58));
    let mut sh_count = elf.half_at(header, (48, 60));

    // Section header table. Past 0xfffe program headers or 0xfeff sections, the real counts
    // live in section header 0 (`sh_info`, `sh_size`).
    const PN_XNUM: u64 = 0xffff;
    if sh_offset != 0 {
        let want = elf.section_header_size();
        if sh_entry < want as u64 {
            return Err(refuse(
                path,
                format_args!(
                    "not a valid ELF library: section header entries are {sh_entry} bytes, not {want}"
                ),
            ));
        }
        if ph_count == PN_XNUM || sh_count == 0 {
            let end = sh_offset.saturating_add(sh_entry);
            if end > len {
                return Err(truncated("section header 0".into(), end));
            }
            let mut first = vec![0u8; want];
            read_at(file, sh_offset, &mut first).map_err(unreadable)?;
            if ph_count == PN_XNUM {
                ph_count = elf.word_at(&first, (28, 44));
            }
            if sh_count == 0 {
                sh_count = elf.addr(&first, (20, 32));
            }
        }
    }

    if ph_count > 0 {
        let want = elf.program_header_size();
        if ph_entry != want as u64 {
            return Err(refuse(
                path,
                format_args!(
                    "not a valid ELF library: program header entries are {ph_entry} bytes, not {want}"
                ),
            ));
        }
        let end =
            ph_count.checked_mul(ph_entry).and_then(|size| ph_offset.checked_add(size)).unwrap_or(u64::MAX);
        if end > len {
            return Err(truncated("the program header table".into(), end));
        }
        file.seek(std::io::SeekFrom::Start(ph_offset)).map_err(unreadable)?;
        let mut table = std::io::BufReader::new(&mut *file);
        let mut entry = vec![0u8; want];
        for i in 0..ph_count {
            std::io::Read::read_exact(&mut table, &mut entry).map_err(unreadable)?;
            let offset = elf.addr(&entry, (4, 8));
            let size = elf.addr(&entry, (16, 32));
            // A segment with no bytes in the file (all `.bss`) maps nothing from it.
            if size == 0 {
                continue;
            }
            let end = offset.saturating_add(size);
            if end > len {
                return Err(truncated(format!("segment {i}"), end));
            }
        }
    }

    if sh_offset != 0 && sh_count > 0 {
        let end =
            sh_count.checked_mul(sh_entry).and_then(|size| sh_offset.checked_add(size)).unwrap_or(u64::MAX);
        if end > len {
            return Err(truncated("the section header table".into(), end));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/plugins/libx.so";

    fn put(b: &mut [u8], at: usize, n: usize, v: u64) {
        let mut bytes = v.to_le_bytes()[..n].to_vec();
        if ElfLayout::HOST.big {
            bytes.reverse();
        }
        b[at..at + n].copy_from_slice(&bytes);
    }

    /// A host-layout ELF file of `len` bytes whose program headers (right after the ELF
    /// header) describe `segments` as `(p_offset, p_filesz)`, with `sections` section
    /// headers at `sh_offset`.
    fn elf(len: usize, segments: &[(u64, u64)], sh_offset: u64, sections: u64) -> Vec<u8> {
        let l = ElfLayout::HOST;
        let (eh, ph, sh) = (l.header_size(), l.program_header_size(), l.section_header_size());
        let mut b = vec![0u8; len.max(eh + segments.len() * ph)];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = if l.wide { 2 } else { 1 };
        b[5] = if l.big { 2 } else { 1 };
        b[6] = 1;
        put(&mut b, 16, 2, 3); // ET_DYN
        let w = if l.wide { 8 } else { 4 };
        let pick = |at: (usize, usize)| if l.wide { at.1 } else { at.0 };
        put(&mut b, pick((28, 32)), w, eh as u64);
        put(&mut b, pick((32, 40)), w, sh_offset);
        put(&mut b, pick((42, 54)), 2, ph as u64);
        put(&mut b, pick((44, 56)), 2, segments.len() as u64);
        put(&mut b, pick((46, 58)), 2, sh as u64);
        put(&mut b, pick((48, 60)), 2, sections);
        for (i, &(offset, size)) in segments.iter().enumerate() {
            let at = eh + i * ph;
            put(&mut b, at, 4, 1); // PT_LOAD
            put(&mut b, at + pick((4, 8)), w, offset);
            put(&mut b, at + pick((16, 32)), w, size);
        }
        b.truncate(len);
        b
    }

    fn check(bytes: &[u8]) -> Result<()> {
        check_elf(&mut std::io::Cursor::new(bytes), bytes.len() as u64, Path::new(PATH))
    }

    fn refusal(bytes: &[u8]) -> String {
        let e = check(bytes).expect_err("refused").to_string();
        assert!(e.starts_with(&format!("plugin `{PATH}`: cannot load: ")), "names the file: {e}");
        e
    }

    #[test]
    fn a_whole_library_passes() {
        check(&elf(4096, &[(0, 1000), (1000, 3000)], 4096 - 5 * 64, 5)).expect("whole");
        // A segment with nothing in the file maps nothing from it, wherever it says it starts.
        check(&elf(4096, &[(0, 1000), (9000, 0)], 0, 0)).expect("bss only");
    }

    #[test]
    fn a_segment_past_the_end_is_truncation() {
        let e = refusal(&elf(4096, &[(0, 1000), (2000, 8192)], 0, 0));
        assert!(e.ends_with("truncated: segment 1 ends at byte 10192, the file has 4096 bytes"), "{e}");
        let e = refusal(&elf(4096, &[(u64::MAX, 2)], 0, 0));
        assert!(e.contains(&format!("truncated: segment 0 ends at byte {}", u64::MAX)), "{e}");
    }

    #[test]
    fn the_header_tables_must_fit_too() {
        let e = refusal(&elf(4096, &[(0, 100)], 4000, 5));
        let end = 4000 + 5 * ElfLayout::HOST.section_header_size();
        assert!(e.ends_with(&format!(
            "truncated: the section header table ends at byte {end}, the file has 4096 bytes"
        )));
        let mut b = elf(4096, &[(0, 100)], 0, 0);
        let l = ElfLayout::HOST;
        put(&mut b, if l.wide { 56 } else { 44 }, 2, 100);
        let end = l.header_size() + 100 * l.program_header_size();
        assert!(refusal(&b).ends_with(&format!(
            "truncated: the program header table ends at byte {end}, the file has 4096 bytes"
        )));
    }

    #[test]
    fn extended_numbering_reads_the_counts_from_section_zero() {
        let l = ElfLayout::HOST;
        let sh_offset = 2048;
        let mut b = elf(4096, &[(0, 100), (100, 9000)], sh_offset, 0);
        let (ph_num, info, size) = if l.wide { (56, 44, 32) } else { (44, 28, 20) };
        put(&mut b, ph_num, 2, 0xffff);
        put(&mut b, sh_offset as usize + info, 4, 2);
        put(&mut b, sh_offset as usize + size, if l.wide { 8 } else { 4 }, 3);
        assert!(refusal(&b).contains("truncated: segment 1 ends at byte 9100"));
        put(&mut b, sh_offset as usize + size, if l.wide { 8 } else { 4 }, 1000);
        put(&mut b, sh_offset as usize + info, 4, 1);
        assert!(refusal(&b).contains("truncated: the section header table ends at byte"));
    }

    #[test]
    fn not_elf_or_not_this_hosts_kind_is_said() {
        let mut b = elf(4096, &[(0, 100)], 0, 0);
        b[..4].copy_from_slice(b"MZ\x90\0");
        assert!(
            refusal(&b)
                .ends_with("not an ELF library: it starts with 4d 5a 90 00, not 7f 45 4c 46 (\\x7fELF)")
        );
        let mut b = elf(4096, &[(0, 100)], 0, 0);
        b[4] = if ElfLayout::HOST.wide { 1 } else { 2 };
        let e = refusal(&b);
        assert!(
            e.contains("-bit library, and this engine is") && e.contains(ElfLayout::HOST.class_name()),
            "{e}"
        );
        let mut b = elf(4096, &[(0, 100)], 0, 0);
        b[5] = if ElfLayout::HOST.big { 1 } else { 2 };
        assert!(refusal(&b).contains("-endian library, and this engine is"));
        let mut b = elf(4096, &[(0, 100)], 0, 0);
        b[4] = 7;
        assert!(refusal(&b).ends_with("unknown ELF class 7"));
    }

    #[test]
    fn a_file_shorter_than_a_header_is_left_to_the_loader() {
        check(b"").expect("the loader says why");
        check(b"\x7fELF\x02\x01").expect("the loader says why");
    }
}
