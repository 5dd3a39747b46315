//! The report's plots, drawn with `plotters` as SVG and PNG side by side: curves over training
//! (a mean line per row with a band over seeds, and below it the last third of training with the
//! y-axis zoomed, where the rows' final order is decided) and the paired differences to a
//! baseline with their 95% intervals. Every row has its own colour; the legend sits right of the
//! data. A row far off the others' scale (a run collapsed to chance) is named, not allowed to
//! flatten them (`on_scale_range`).
//!
//! Text is set in DejaVu Sans, compiled into the crate (`assets/`, Bitstream Vera licence), so
//! PNGs render the same on machines without fonts.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Size in pixels of a differences plot.
const SIZE: (u32, u32) = (1120, 560);
/// Size in pixels of a curves plot: the whole run on top, the zoomed last third below.
const CURVES_SIZE: (u32, u32) = (1120, 840);
/// Height of a curves plot's top panel.
const FULL_PANEL: u32 = 500;
/// Width of the legend column right of the data.
const LEGEND: u32 = 360;

/// Colours of the rows, in order, as `0xRRGGBB` (Tableau 10, then cyan and black): each distinct.
const PALETTE: [u32; 12] = [
    0x4e79a7, 0xf28e2b, 0xe15759, 0x76b7b2, 0x59a14f, 0xedc948, 0xb07aa1, 0xff9da7, 0x9c755f, 0x79706e, 0x17becf,
    0x000000,
];

/// The colour of row `i` (the palette repeats past its 12 colours).
fn colour(i: usize) -> RGBColor {
    let c = PALETTE[i % PALETTE.len()];
    RGBColor((c >> 16) as u8, (c >> 8) as u8, c as u8)
}

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            unreachable!("the embedded DejaVu Sans parses (checked by the plot tests)");
        }
    });
}

/// One row's curve: `(x, mean, lo, hi)` per point; `lo == hi == mean` draws no band.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub label: String,
    /// Row index for the palette (`colour`): a row keeps its colour across a table's plots.
    pub colour: usize,
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// One row's paired difference: mean, its 95% interval if any, and the paper's difference.
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    pub label: String,
    /// Row index for the palette (`colour`).
    pub colour: usize,
    pub mean: f64,
    pub interval: Option<(f64, f64)>,
    pub paper: Option<f64>,
}

type PlotResult = Result<(), String>;

/// Curves of `y` over `x`, one colour per curve with a band over seeds, the legend on the right;
/// a second panel below repeats the last third of `x` with the y-axis fitted to it.
pub fn curves(stem: &Path, title: &str, x_label: &str, y_label: &str, curves: &[Curve]) -> PlotResult {
    save(
        stem,
        CURVES_SIZE,
        |svg| draw_curves(svg, title, x_label, y_label, curves),
        |png| draw_curves(png, title, x_label, y_label, curves),
    )
}

/// Paired differences as points with 95% interval bars, the paper's difference beside each.
pub fn differences(stem: &Path, title: &str, x_label: &str, rows: &[Difference]) -> PlotResult {
    save(
        stem,
        SIZE,
        |svg| draw_differences(svg, title, x_label, rows),
        |png| draw_differences(png, title, x_label, rows),
    )
}

/// Draw one figure twice (the same drawing function, once per back-end) and write `stem.svg` and
/// `stem.png`, each atomically: a kill leaves the previous plot or the new one, never half a file.
fn save(
    stem: &Path,
    size: (u32, u32),
    draw_svg: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> PlotResult,
    draw_png: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> PlotResult,
) -> PlotResult {
    register_font();
    let mut svg = String::new();
    draw_svg(&SVGBackend::with_string(&mut svg, size).into_drawing_area())?;
    write(&stem.with_extension("svg"), svg.as_bytes())?;
    let mut pixels = vec![255u8; (size.0 * size.1 * 3) as usize];
    draw_png(&BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area())?;
    let image = image::RgbImage::from_raw(size.0, size.1, pixels).expect("a buffer of the plot's size");
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).map_err(err)?;
    write(&stem.with_extension("png"), png.get_ref())
}

fn write(path: &Path, bytes: &[u8]) -> PlotResult {
    crate::files::write_atomic(path, bytes).map_err(|e| format!("{}: {}", path.display(), crate::files::io_hint(&e)))
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// `[lo, hi]` widened by 5% (or ±1 when flat).
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 1.0 };
    (lo - pad, hi + pad)
}

/// `v` to 2 decimals (for labels).
fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The range of `values` an axis should show: all of them, unless a minority lies beyond a gap
/// more than 20× the span of the rest, which would then fill under 5% of the axis (a collapsed
/// run at chance beside rows within a point of each other flattens them into one line); then
/// the rest's. Sorted, split at the widest gap; the smaller side must hold fewer values.
fn on_scale_range(values: &[f64]) -> (f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let (Some(&first), Some(&last)) = (v.first(), v.last()) else {
        return (f64::NAN, f64::NAN);
    };
    let Some((split, gap)) = (1..v.len()).map(|i| (i, v[i] - v[i - 1])).max_by(|a, b| a.1.total_cmp(&b.1)) else {
        return (first, last);
    };
    let (below, above) = v.split_at(split);
    let (major, minor) = if below.len() >= above.len() { (below, above) } else { (above, below) };
    let major_span = major[major.len() - 1] - major[0];
    if minor.len() < major.len() && gap > 20.0 * major_span.max(f64::MIN_POSITIVE) {
        (major[0], major[major.len() - 1])
    } else {
        (first, last)
    }
}

/// How a legend entry's swatch looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Swatch {
    Line,
    Dot,
    Triangle,
    /// An interval bar with end caps.
    Interval,
}

/// `{v}` without a trailing `.0` for whole numbers (iterations, percentages).
fn tick(v: &f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The legend column: a swatch and a label per entry (labels cut at 42 characters).
fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[(String, RGBColor, Swatch)]) -> PlotResult {
    let font = ("sans-serif", 15).into_font();
    for (i, (label, colour, swatch)) in entries.iter().enumerate() {
        let y = 60 + 26 * i as i32;
        match swatch {
            Swatch::Dot => area.draw(&Circle::new((22, y), 5, colour.filled())).map_err(err)?,
            Swatch::Triangle => area.draw(&TriangleMarker::new((22, y), 7, colour.filled())).map_err(err)?,
            Swatch::Line => area.draw(&Rectangle::new([(10, y - 2), (34, y + 2)], colour.filled())).map_err(err)?,
            Swatch::Interval => {
                area.draw(&PathElement::new(vec![(10, y), (34, y)], colour.stroke_width(3))).map_err(err)?;
                for x in [10, 34] {
                    area.draw(&PathElement::new(vec![(x, y - 5), (x, y + 5)], colour.stroke_width(2))).map_err(err)?;
                }
            }
        }
        let text: String =
            if label.chars().count() > 42 { label.chars().take(41).chain(['…']).collect() } else { label.clone() };
        area.draw(&Text::new(text, (44, y - 8), font.clone())).map_err(err)?;
    }
    Ok(())
}

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    curves: &[Curve],
) -> PlotResult {
    root.fill(&WHITE).map_err(err)?;
    let (plot, side) = root.split_horizontally(CURVES_SIZE.0 - LEGEND);
    let (full, zoom) = plot.split_vertically(FULL_PANEL);
    let (x0, x1) = curves
        .iter()
        .flat_map(|c| &c.points)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (x0, x1) = if x0.is_finite() { (x0.min(0.0), x1) } else { (0.0, 1.0) };
    let x1 = x1.max(x0 + 1.0);
    panel(&full, (title, 18), x_label, y_label, (x0, x1), curves)?;
    let cut = x1 - (x1 - x0) / 3.0;
    let tail: Vec<Curve> = curves
        .iter()
        .map(|c| Curve { points: c.points.iter().filter(|p| p.0 >= cut).copied().collect(), ..c.clone() })
        .collect();
    // a curve wholly off the axis the rest need is named (with its mean over the third), not drawn
    let values: Vec<f64> = tail.iter().flat_map(|c| &c.points).flat_map(|p| [p.1, p.2, p.3]).collect();
    let (lo, hi) = on_scale_range(&values);
    let (lo, hi) = padded(lo, hi);
    let (shown, off): (Vec<Curve>, Vec<Curve>) =
        tail.into_iter().partition(|c| c.points.is_empty() || c.points.iter().any(|p| (lo..=hi).contains(&p.1)));
    let level = |c: &Curve| c.points.iter().map(|p| p.1).sum::<f64>() / c.points.len() as f64;
    let mut caption = format!("the last third ({x_label} ≥ {}), {y_label} axis zoomed", tick(&cut.round()));
    let named: Vec<String> = off.iter().map(|c| format!("{} (at {})", c.label, tick(&round2(level(c))))).collect();
    if !named.is_empty() {
        caption += &format!("; off scale: {}", named.join(", "));
    }
    panel(&zoom, (&caption, 15), x_label, y_label, (cut, x1), &shown)?;
    // a row with no finished run draws nothing, so it has no legend entry either
    let entries: Vec<(String, RGBColor, Swatch)> = curves
        .iter()
        .filter(|c| !c.points.is_empty())
        .map(|c| (c.label.clone(), colour(c.colour), Swatch::Line))
        .collect();
    legend(&side, &entries)?;
    root.present().map_err(err)
}

/// One panel of curves over `x_range`, its y-axis fitted to the points' bands.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (caption, caption_size): (&str, u32),
    x_label: &str,
    y_label: &str,
    (x0, x1): (f64, f64),
    curves: &[Curve],
) -> PlotResult {
    let (y0, y1) = curves
        .iter()
        .flat_map(|c| &c.points)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.2), b.max(p.3)));
    let (y0, y1) = padded(y0, y1);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", caption_size))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style(("sans-serif", 13))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    for c in curves {
        let colour = colour(c.colour);
        if c.points.iter().any(|p| p.3 > p.2) {
            let band: Vec<(f64, f64)> =
                c.points.iter().map(|p| (p.0, p.3)).chain(c.points.iter().rev().map(|p| (p.0, p.2))).collect();
            chart.draw_series(std::iter::once(Polygon::new(band, colour.mix(0.18).filled()))).map_err(err)?;
        }
        chart.draw_series(LineSeries::new(c.points.iter().map(|p| (p.0, p.1)), colour.stroke_width(2))).map_err(err)?;
        if c.points.len() <= 40 {
            chart.draw_series(c.points.iter().map(|p| Circle::new((p.0, p.1), 3, colour.filled()))).map_err(err)?;
        }
    }
    Ok(())
}

fn draw_differences<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    rows: &[Difference],
) -> PlotResult {
    root.fill(&WHITE).map_err(err)?;
    let (plot, side) = root.split_horizontally(SIZE.0 - LEGEND);
    let values = rows.iter().flat_map(|r| {
        let (lo, hi) = r.interval.unwrap_or((r.mean, r.mean));
        [lo, hi, r.mean].into_iter().chain(r.paper)
    });
    let values: Vec<f64> = values.chain([0.0]).collect();
    let (lo, hi) = on_scale_range(&values);
    let (lo, hi) = padded(lo, hi);
    // marks beyond the axis (a collapsed row) sit at its edge, hollow, with their value written
    let clamp = |v: f64| v.clamp(lo, hi);
    let n = rows.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(12)
        .build_cartesian_2d(lo..hi, -0.5..n - 0.5)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .x_label_formatter(&tick)
        .disable_y_mesh()
        .disable_y_axis()
        .label_style(("sans-serif", 13))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(std::iter::once(PathElement::new(vec![(0.0, -0.5), (0.0, n - 0.5)], BLACK.stroke_width(1))))
        .map_err(err)?;
    let paper_colour = RGBColor(0x99, 0x99, 0x99);
    for (i, r) in rows.iter().enumerate() {
        let y = n - 1.0 - i as f64;
        let colour = colour(r.colour);
        if let Some((a, b)) = r.interval.map(|(a, b)| (clamp(a), clamp(b))) {
            chart
                .draw_series(std::iter::once(PathElement::new(vec![(a, y), (b, y)], colour.stroke_width(3))))
                .map_err(err)?;
            for x in [a, b] {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x, y - 0.12), (x, y + 0.12)],
                        colour.stroke_width(2),
                    )))
                    .map_err(err)?;
            }
        }
        if (lo..=hi).contains(&r.mean) {
            chart.draw_series(std::iter::once(Circle::new((r.mean, y), 6, colour.filled()))).map_err(err)?;
        } else {
            let x = clamp(r.mean);
            chart.draw_series(std::iter::once(Circle::new((x, y), 6, colour.stroke_width(2)))).map_err(err)?;
            let (h, arrow) = if r.mean > hi { (HPos::Right, "→") } else { (HPos::Left, "←") };
            let label = format!("{} off scale {arrow}", tick(&round2(r.mean)));
            let style = TextStyle::from(("sans-serif", 13).into_font()).color(&colour).pos(Pos::new(h, VPos::Bottom));
            chart.draw_series(std::iter::once(Text::new(label, (x, y + 0.12), style))).map_err(err)?;
        }
        if let Some(p) = r.paper {
            let marker = TriangleMarker::new((clamp(p), y + 0.22), 7, paper_colour.filled());
            chart.draw_series(std::iter::once(marker)).map_err(err)?;
        }
    }
    let mut entries: Vec<(String, RGBColor, Swatch)> =
        rows.iter().map(|r| (r.label.clone(), colour(r.colour), Swatch::Dot)).collect();
    // the key names only the marks this plot draws
    if rows.iter().any(|r| r.paper.is_some()) {
        entries.push(("the paper's difference".into(), paper_colour, Swatch::Triangle));
    }
    if rows.iter().any(|r| r.interval.is_some()) {
        entries.push(("our 95% CI over seed pairs".into(), BLACK, Swatch::Interval));
    }
    legend(&side, &entries)?;
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::on_scale_range;

    #[test]
    fn a_far_minority_leaves_the_axis_and_close_values_stay() {
        // Table 1's last third: a collapsed run at chance beside three within 1.5 points
        let mut v = vec![10.0, 10.1, 10.07];
        v.extend([91.8, 92.2, 92.9, 93.3, 92.6, 92.7]);
        assert_eq!(on_scale_range(&v), (91.8, 93.3));
        // Table 3: three curves within a tenth of a point of each other stay
        assert_eq!(on_scale_range(&[92.73, 92.66, 92.64]), (92.64, 92.73));
        // a separate value that would still leave the rest a readable share stays
        assert_eq!(on_scale_range(&[0.0, 0.1, 0.12, 1.0]), (0.0, 1.0));
        // a far majority is never dropped: the off side must hold fewer values
        assert_eq!(on_scale_range(&[0.0, 0.01, 80.0, 80.01]), (0.0, 80.01));
        assert_eq!(on_scale_range(&[82.77, -0.38, 0.09, 0.0, -0.74]), (-0.74, 0.09));
        assert_eq!(on_scale_range(&[5.0]), (5.0, 5.0));
        assert!(on_scale_range(&[f64::NAN]).0.is_nan());
    }
}
