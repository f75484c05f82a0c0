//! Hand-rolled number formatting: `write!` with `{:.2}` costs more than generating the row.
//! Every decimal value is carried as a scaled integer, so what is printed is exact and the
//! same on every platform.

pub fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Zero-padded to `width` digits (ids, dates, decimals).
pub fn push_padded(buf: &mut Vec<u8>, mut v: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    while v > 0 {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let start = i.min(digits.len() - width);
    buf.extend_from_slice(&digits[start..]);
}

/// `scaled / 10^decimals` with exactly `decimals` digits after the point.
pub fn push_fixed(buf: &mut Vec<u8>, scaled: i64, decimals: u32) {
    if scaled < 0 {
        buf.push(b'-');
    }
    let v = scaled.unsigned_abs();
    let unit = 10u64.pow(decimals);
    push_u64(buf, v / unit);
    if decimals > 0 {
        buf.push(b'.');
        push_padded(buf, v % unit, decimals as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(v: i64, d: u32) -> String {
        let mut b = Vec::new();
        push_fixed(&mut b, v, d);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn formats() {
        assert_eq!(fixed(12345, 2), "123.45");
        assert_eq!(fixed(5, 2), "0.05");
        assert_eq!(fixed(-105, 2), "-1.05");
        assert_eq!(fixed(0, 3), "0.000");
        assert_eq!(fixed(42, 0), "42");
        let mut b = Vec::new();
        push_padded(&mut b, 123, 6);
        assert_eq!(b, b"000123");
    }
}
