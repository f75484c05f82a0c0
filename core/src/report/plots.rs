//! PNG line plots for report.md: precision-recall curves and budget sweeps, before vs after.
//!
//! The build has no fontconfig (plotters' `ab_glyph` feature), so the text font ships in the
//! binary: DejaVu Sans, licence in `core/assets/DejaVuSans-LICENSE.txt`.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::{Error, Result};

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (800, 500);
/// The axis range for a rate: 0..1 plus a sliver so that a line or marker at exactly 1 is
/// not cut in half by the plot's edge.
const RATE: (f64, f64) = (0.0, 1.025);

/// Colour-blind-safe and told apart in greyscale too (Okabe–Ito); the first two are the
/// usual "before" and "after".
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
];

fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, include_bytes!("../../assets/DejaVuSans.ttf")).is_ok()
    });
    if ok { Ok(()) } else { Err(Error::invalid("the bundled DejaVu Sans font does not load")) }
}

/// One curve per `(label, (recall, precision) points)`, e.g. from
/// [`super::scores::pr_curve`] before and after fine-tuning.
pub fn pr_curves(path: impl AsRef<Path>, curves: &[(&str, &[(f64, f64)])]) -> Result<()> {
    let axes = Axes { x: RATE, y: RATE, x_label: "Recall", y_label: "Precision" };
    let figure =
        Figure { title: "Precision–recall (clean test set)", axes: &axes, series: curves, markers: false };
    draw(path.as_ref(), &figure)
}

/// One line with markers per `(label, (x, y) points)`, e.g. attack success rate against
/// budget before and after, or robust accuracy against SNR. The y axis is 0..1 when every
/// y is a rate in that range; both axes otherwise fit the data.
pub fn sweep(
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, &[(f64, f64)])],
) -> Result<()> {
    let points = || series.iter().flat_map(|(_, p)| p.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let y =
        if points().all(|&(_, y)| (0.0..=1.0).contains(&y)) { RATE } else { padded(points().map(|p| p.1)) };
    let axes = Axes { x: padded(points().map(|p| p.0)), y, x_label, y_label };
    draw(path.as_ref(), &Figure { title, axes: &axes, series, markers: true })
}

struct Axes<'a> {
    x: (f64, f64),
    y: (f64, f64),
    x_label: &'a str,
    y_label: &'a str,
}

/// The data's range plus 5 % each side, so end markers are not cut in half; a single value
/// gets a unit-wide range around it.
fn padded(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    if lo == hi {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// `0.25`, `1`, `80`, not `1.0` or `80.0`.
fn tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// The legend goes in the corner the data leaves emptiest.
fn legend_corner(axes: &Axes, series: &[(&str, &[(f64, f64)])]) -> SeriesLabelPosition {
    let unit = |v: f64, (lo, hi): (f64, f64)| (v - lo) / (hi - lo);
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let crowd = |right: bool, upper: bool| {
        let inside = |&&(x, y): &&(f64, f64)| {
            let (ux, uy) = (unit(x, axes.x), unit(y, axes.y));
            (if right { ux > 0.55 } else { ux < 0.45 }) && (if upper { uy > 0.6 } else { uy < 0.4 })
        };
        series.iter().map(|(_, p)| p.iter().filter(inside).count()).sum::<usize>()
    };
    // Ties keep the first corner listed; the min_by_key below returns the first minimum.
    corners.into_iter().min_by_key(|&(_, right, upper)| crowd(right, upper)).map(|c| c.0).unwrap()
}

/// One plot: what [`draw`] puts in a PNG.
struct Figure<'a> {
    title: &'a str,
    axes: &'a Axes<'a>,
    series: &'a [(&'a str, &'a [(f64, f64)])],
    markers: bool,
}

fn draw(path: &Path, figure: &Figure<'_>) -> Result<()> {
    ensure_font()?;
    crate::files::write_with(path, |tmp| draw_into(tmp, path, figure))
}

/// Draws into `tmp`; errors name `path`, the file the user knows about.
fn draw_into(tmp: &Path, path: &Path, figure: &Figure<'_>) -> Result<()> {
    let Figure { title, axes, series, markers } = *figure;
    let fail = |e| Error::external(format!("{}: cannot draw the plot", path.display()), e);
    let root = BitMapBackend::new(tmp, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(fail)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(65)
        .build_cartesian_2d(axes.x.0..axes.x.1, axes.y.0..axes.y.1)
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc(axes.x_label)
        .y_desc(axes.y_label)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .light_line_style(RGBColor(242, 242, 242))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(fail)?;
    for (i, (label, points)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let line = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite());
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(3)))
            .map_err(fail)?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3)));
        if markers {
            // Alternate shapes so that series stay apart where colours do not (print, colour
            // blindness).
            if i % 2 == 0 {
                chart.draw_series(line.map(|p| Circle::new(p, 5, colour.filled()))).map_err(fail)?;
            } else {
                chart.draw_series(line.map(|p| TriangleMarker::new(p, 7, colour.filled()))).map_err(fail)?;
            }
        }
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .position(legend_corner(axes, series))
            .label_font((FONT, 16))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(160, 160, 160))
            .margin(12)
            .draw()
            .map_err(fail)?;
    }
    root.present().map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::scores::pr_curve;

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    fn out_dir(name: &str) -> std::path::PathBuf {
        // TEMPERED_PLOT_DIR keeps the images for a look; by default they go to a temp dir.
        let dir = std::env::var_os("TEMPERED_PLOT_DIR").map(Into::into).unwrap_or_else(|| {
            std::env::temp_dir().join(format!("tempered-plots-{}-{name}", std::process::id()))
        });
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        assert!(bytes.len() > 1000, "{} is {} bytes", path.display(), bytes.len());
        assert_eq!(bytes[..8], PNG_SIGNATURE);
        // IHDR width and height, big-endian, right after the signature and chunk header.
        let dim = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!((dim(16), dim(20)), SIZE);
    }

    #[test]
    fn pr_curve_png() {
        let labels: Vec<bool> = (0..200).map(|i| i % 4 == 0).collect();
        let noisy = |shift: f32| -> Vec<f32> {
            labels
                .iter()
                .enumerate()
                .map(|(i, &l)| ((i * 37 % 100) as f32 / 100.0) * 0.8 + if l { shift } else { 0.0 })
                .collect()
        };
        let (before, after) = (pr_curve(&noisy(0.35), &labels), pr_curve(&noisy(0.2), &labels));
        let dir = out_dir("pr");
        let path = dir.join("pr_curve.png");
        pr_curves(&path, &[("before fine-tuning", &before), ("after fine-tuning", &after)]).unwrap();
        assert_png(&path);
    }

    #[test]
    fn sweep_pngs() {
        let dir = out_dir("sweep");
        let before = [(0.1, 0.35), (0.25, 0.7), (0.5, 0.92), (1.0, 1.0)];
        let after = [(0.1, 0.04), (0.25, 0.12), (0.5, 0.31), (1.0, 0.6)];
        let path = dir.join("sweep_pgd.png");
        sweep(
            &path,
            "PGD L∞: attack success vs budget",
            "budget ε (L∞)",
            "attack success rate",
            &[("before", &before), ("after", &after)],
        )
        .unwrap();
        assert_png(&path);

        // Negative x and y outside 0..1 fit the data.
        let snr = [(-5.0, 12.0), (0.0, 30.0), (10.0, 55.0), (20.0, 80.0)];
        let path = dir.join("sweep_snr.png");
        sweep(&path, "Robust accuracy vs SNR", "SNR (dB)", "robust accuracy (%)", &[("after", &snr)])
            .unwrap();
        assert_png(&path);

        let path = dir.join("empty.png");
        sweep(&path, "nothing", "x", "y", &[("nan", &[(f64::NAN, 0.5)])]).unwrap();
        assert_png(&path);
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!([0.0, 0.25, 1.0, 80.0, -5.0, -0.0001].map(tick), ["0", "0.25", "1", "80", "-5", "0"]);
    }

    #[test]
    fn legend_avoids_the_data() {
        let axes = Axes { x: (0.0, 1.0), y: (0.0, 1.0), x_label: "", y_label: "" };
        let rising = [(0.0, 0.0), (0.2, 0.1), (0.5, 0.5), (0.8, 0.9), (1.0, 1.0)];
        let pos = legend_corner(&axes, &[("a", &rising)]);
        assert!(matches!(pos, SeriesLabelPosition::LowerRight), "{pos:?}");
        let pr = [(0.0, 1.0), (0.3, 0.95), (0.6, 0.9), (0.9, 0.8), (1.0, 0.3)];
        let pos = legend_corner(&axes, &[("a", &pr)]);
        assert!(matches!(pos, SeriesLabelPosition::LowerLeft), "{pos:?}");
    }
}
