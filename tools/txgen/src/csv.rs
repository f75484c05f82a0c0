//! The CSV writer: one line per row, formatted by hand into a reused buffer.

use std::io::{self, Write};

use crate::category::CATEGORIES;
use crate::clock::{START_EPOCH_DAY, civil_from_days};
use crate::generator::Rows;
use crate::row::Row;
use crate::schema::{
    BRANDS, CARD_TYPES, CHANNELS, COLUMNS, COUNTRIES, CURRENCIES, DEVICES, ENTRY_MODES, SEGMENTS, TIERS,
};
use crate::text;

fn yes_no(buf: &mut Vec<u8>, v: bool) {
    buf.extend_from_slice(if v { b"Yes" } else { b"No" });
}

/// Appends one CSV line (no quoting needed: no field contains a comma, quote or newline).
pub fn format_row(buf: &mut Vec<u8>, r: &Row) {
    use text::{push_fixed, push_padded, push_u64};
    let sep = |buf: &mut Vec<u8>| buf.push(b',');
    push_u64(buf, r.id);
    sep(buf);
    let (y, m, d) = civil_from_days(START_EPOCH_DAY + r.ts / 86_400);
    let secs = r.ts % 86_400;
    push_padded(buf, y as u64, 4);
    buf.push(b'-');
    push_padded(buf, m.into(), 2);
    buf.push(b'-');
    push_padded(buf, d.into(), 2);
    buf.push(b'T');
    push_padded(buf, (secs / 3600) as u64, 2);
    buf.push(b':');
    push_padded(buf, (secs / 60 % 60) as u64, 2);
    buf.push(b':');
    push_padded(buf, (secs % 60) as u64, 2);
    sep(buf);
    buf.push(b'C');
    push_padded(buf, u64::from(r.customer) + 1, 6);
    for s in [
        CATEGORIES[r.category as usize].name,
        CHANNELS[r.channel as usize],
        COUNTRIES[r.country as usize],
        r.device.map_or("", |d| DEVICES[d as usize]),
        CARD_TYPES[r.card_type as usize],
        BRANDS[r.brand as usize],
        ENTRY_MODES[r.entry as usize],
        SEGMENTS[r.segment as usize],
        TIERS[r.tier as usize],
        CURRENCIES[r.currency as usize],
    ] {
        sep(buf);
        buf.extend_from_slice(s.as_bytes());
    }
    for b in [r.international, r.card_present, r.three_ds, r.new_device] {
        sep(buf);
        yes_no(buf, b);
    }
    for (v, decimals) in [
        (r.amount_cents, 2),
        (r.balance_before_cents, 2),
        (r.balance_after_cents(), 2),
        (r.credit_limit_cents, 2),
        (r.utilization_milli, 3),
        (r.customer_age.into(), 0),
        (r.account_age_days.into(), 0),
        (r.avg_30d_cents, 2),
        (r.max_30d_cents, 2),
        (r.ratio_milli, 3),
        (r.n_tx_24h.into(), 0),
        (r.n_tx_7d.into(), 0),
        (r.n_merchants_24h.into(), 0),
        (r.n_declined_24h.into(), 0),
        (r.pin_failures_24h.into(), 0),
        (r.n_countries_7d.into(), 0),
    ] {
        sep(buf);
        push_fixed(buf, v, decimals);
    }
    sep(buf);
    if let Some(m) = r.minutes_since_last {
        push_u64(buf, m.into());
    }
    sep(buf);
    if let Some(d) = r.distance_dkm {
        push_fixed(buf, d, 1);
    }
    sep(buf);
    push_fixed(buf, r.merchant_rate_e5, 5);
    sep(buf);
    push_u64(buf, r.merchant_age_days.into());
    sep(buf);
    push_u64(buf, r.hour() as u64);
    sep(buf);
    push_u64(buf, r.day_of_week() as u64);
    sep(buf);
    buf.push(if r.is_fraud { b'1' } else { b'0' });
    buf.push(b'\n');
}

/// What was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub rows: u64,
    pub frauds: u64,
}

/// Writes the header and every row to `out`, one line at a time (wrap it in a `BufWriter`).
pub fn write_csv<W: Write>(rows: Rows, out: &mut W) -> io::Result<Summary> {
    let mut buf = Vec::with_capacity(512);
    buf.extend_from_slice(COLUMNS.join(",").as_bytes());
    buf.push(b'\n');
    out.write_all(&buf)?;
    let mut summary = Summary { rows: 0, frauds: 0 };
    for row in rows {
        buf.clear();
        format_row(&mut buf, &row);
        out.write_all(&buf)?;
        summary.rows += 1;
        summary.frauds += u64::from(row.is_fraud);
    }
    out.flush()?;
    Ok(summary)
}
