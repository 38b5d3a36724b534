//! Drawing a [`Figure`] with plotters: one function over any plotters backend, used with
//! `SVGBackend` (notebooks, `.svg` files) and, with the `png` feature, `BitMapBackend` (`.png`
//! files, text from the bundled DejaVu Sans, so no system fonts are needed). Every size is in
//! figure units times `scale` (device pixels per unit).

use super::{level_color, panel_bounds, text_width, Color, Figure, Layer, Panel, LABEL, TICK, TITLE};
use crate::error::{Error, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::{Drawable, PointCollection};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::Color as _;
use plotters_backend::{BackendCoord, DrawingErrorKind};

impl From<Color> for RGBColor {
    fn from(c: Color) -> RGBColor {
        RGBColor(c.0, c.1, c.2)
    }
}

fn fail<E: std::fmt::Debug>(e: E) -> Error {
    Error::invalid(format!("drawing the figure failed: {e:?}"), "report this as a bug")
}

/// An RGB picture blitted onto the backend (a base64 PNG `<image>` in SVG, pixels in a bitmap).
struct Picture {
    at: (i32, i32),
    size: (u32, u32),
    rgb: Vec<u8>,
}

impl<'a> PointCollection<'a, (i32, i32)> for &'a Picture {
    type Point = &'a (i32, i32);
    type IntoIter = std::iter::Once<&'a (i32, i32)>;
    fn point_iter(self) -> Self::IntoIter {
        std::iter::once(&self.at)
    }
}

impl<DB: DrawingBackend> Drawable<DB> for Picture {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut points: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> std::result::Result<(), DrawingErrorKind<DB::ErrorType>> {
        match points.next() {
            Some(p) => backend.blit_bitmap(p, self.size, &self.rgb),
            None => Ok(()),
        }
    }
}

/// Draws `fig` on `root`, a drawing area of `fig.size()` times `scale` pixels.
pub(super) fn draw<DB: DrawingBackend>(fig: &Figure, root: &DrawingArea<DB, Shift>, scale: f64) -> Result<()> {
    let px = |v: f64| (v * scale).round() as i32;
    let font = |size: f64| ("sans-serif", size * scale).into_font();
    root.fill(&WHITE).map_err(fail)?;
    let (w, _) = fig.size();
    let centre = Pos::new(HPos::Center, VPos::Center);
    root.draw(&Text::new(fig.title.clone(), (px(w / 2.0), px(16.0)), font(TITLE).color(&BLACK).pos(centre))).map_err(fail)?;
    let mut y = 30.0;
    for n in &fig.notes {
        y += 16.0;
        let style = font(LABEL - 1.0).color(&RGBColor::from(Color::GREY)).pos(centre);
        root.draw(&Text::new(n.clone(), (px(w / 2.0), px(y - 8.0)), style)).map_err(fail)?;
    }
    for row in fig.legend_rows() {
        y += 18.0;
        let total: f64 = row.iter().map(|e| super::legend_entry_width(&e.0)).sum();
        let mut x = (w - total) / 2.0;
        for (name, color, dashed, band) in row {
            let c = RGBColor::from(color);
            if band {
                root.draw(&Rectangle::new([(px(x), px(y - 12.0)), (px(x + 22.0), px(y - 4.0))], c.mix(0.25).filled())).map_err(fail)?;
            } else if dashed {
                for k in 0..3 {
                    let a = x + 8.0 * k as f64;
                    root.draw(&PathElement::new(vec![(px(a), px(y - 8.0)), (px(a + 5.0), px(y - 8.0))], c.stroke_width(px(2.0) as u32)))
                        .map_err(fail)?;
                }
            } else {
                root.draw(&PathElement::new(vec![(px(x), px(y - 8.0)), (px(x + 22.0), px(y - 8.0))], c.stroke_width(px(2.0) as u32)))
                    .map_err(fail)?;
            }
            let style = font(LABEL - 1.0).color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(name.clone(), (px(x + 27.0), px(y - 8.0)), style)).map_err(fail)?;
            x += super::legend_entry_width(&name);
        }
    }
    let (_, body) = root.split_vertically(px(y + 4.0));
    if !fig.image_rows.is_empty() {
        return draw_images(fig, &body, scale);
    }
    let (pw, ph) = fig.panel_size;
    // The panels centred under the title (a long title or note widens the canvas beyond them).
    let left = ((w - fig.cols.min(fig.panels.len()) as f64 * pw) / 2.0).max(0.0);
    for (i, panel) in fig.panels.iter().enumerate() {
        let (col, row) = ((i % fig.cols) as f64, (i / fig.cols) as f64);
        let area = body.clone().shrink((px(left + col * pw), px(row * ph)), (px(pw) as u32, px(ph) as u32));
        draw_panel(panel, &area, scale)?;
    }
    Ok(())
}

fn draw_images<DB: DrawingBackend>(fig: &Figure, body: &DrawingArea<DB, Shift>, scale: f64) -> Result<()> {
    let px = |v: f64| (v * scale).round() as i32;
    let (cell, row_h) = fig.panel_size;
    for (r, row) in fig.image_rows.iter().enumerate() {
        let y = r as f64 * row_h + 6.0;
        let style = ("sans-serif", LABEL * scale).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
        body.draw(&Text::new(row.label.clone(), (px(4.0), px(y + cell / 2.0)), style)).map_err(fail)?;
        for (k, img) in row.images.iter().enumerate() {
            let x = 110.0 + k as f64 * cell;
            let side = (cell - 4.0) * scale;
            // Nearest-neighbour upscaling, so small images stay sharp in browsers and bitmaps.
            let factor = (side / img.width().max(1) as f64).floor().max(1.0) as u32;
            let big = image::imageops::resize(img, img.width() * factor, img.height() * factor, image::imageops::FilterType::Nearest);
            let picture = Picture { at: (px(x), px(y)), size: (big.width(), big.height()), rgb: big.into_raw() };
            body.draw(&picture).map_err(fail)?;
            if let Some(cap) = row.captions.get(k) {
                let style = ("sans-serif", TICK * scale).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
                body.draw(&Text::new(cap.clone(), (px(x + (cell - 4.0) / 2.0), px(y + cell + 2.0)), style)).map_err(fail)?;
            }
        }
    }
    Ok(())
}

/// As many decimals as a tick step needs (0.25 -> 2, 5 -> 0).
fn decimals(span: f64) -> usize {
    let step = span / 5.0;
    (0..6).find(|&d| step * 10f64.powi(d) >= 1.0).unwrap_or(6) as usize
}

/// A panel's chart: `f64` coordinates on both axes.
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The data range a panel shows: `x0..x1` by `y0..y1`.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Bounds {
    /// Whether `(x, y)` is finite and inside the range.
    fn contains(&self, &(x, y): &(f64, f64)) -> bool {
        x.is_finite() && y.is_finite() && x >= self.x0 && x <= self.x1 && y >= self.y0 && y <= self.y1
    }
}

fn draw_panel<DB: DrawingBackend>(p: &Panel, area: &DrawingArea<DB, Shift>, scale: f64) -> Result<()> {
    let bars = p.layers.iter().find_map(|l| if let Layer::Bars { labels, .. } = l { Some(labels.clone()) } else { None });
    let Some(bounds) = padded_bounds(p, bars.is_some()) else { return Ok(()) };
    let mut chart = panel_chart(p, area, bars.as_deref(), bounds, scale)?;
    draw_mesh(&mut chart, p, bars.as_deref(), bounds, scale)?;
    for l in &p.layers {
        draw_area_layer(&mut chart, l, bounds, scale)?;
    }
    // Lines last, so they sit on top of bands and contours.
    for l in &p.layers {
        draw_line_layer(&mut chart, l, bounds, scale)?;
    }
    Ok(())
}

/// The range of a panel's data (`None`: nothing to draw), padded on the axes the panel does not
/// fix (a bar chart: room for the values right of the bars, none on the category axis).
fn padded_bounds(p: &Panel, bars: bool) -> Option<Bounds> {
    let (mut x0, mut x1, mut y0, mut y1) = panel_bounds(p)?;
    if p.x_range.is_none() {
        let pad = if bars { 0.0 } else { ((x1 - x0) * 0.04).max(if x1 == x0 { 0.5 } else { 0.0 }) };
        (x0, x1) = (x0 - pad, x1 + pad + if bars { (x1 - x0) * 0.12 } else { 0.0 });
    }
    if p.y_range.is_none() && !bars {
        let pad = ((y1 - y0) * 0.06).max(if y1 == y0 { 0.5 } else { 0.0 });
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    Some(Bounds { x0, x1, y0, y1 })
}

/// The panel's chart on `area`: margins, the caption, and label areas wide enough for the bar
/// labels (`bars`) when it has them.
fn panel_chart<'a, DB: DrawingBackend>(
    p: &Panel,
    area: &'a DrawingArea<DB, Shift>,
    bars: Option<&[String]>,
    b: Bounds,
    scale: f64,
) -> Result<Chart<'a, DB>> {
    let px = |v: f64| (v * scale).round() as i32;
    let font = |size: f64| ("sans-serif", size * scale).into_font();
    let contours = p.layers.iter().any(|l| matches!(l, Layer::Contours { .. }));
    let left = match bars {
        Some(labels) => 14.0 + labels.iter().map(|l| text_width(l, TICK)).fold(0.0, f64::max),
        None => 54.0,
    };
    let mut builder = ChartBuilder::on(area);
    builder.margin(px(6.0)).margin_right(px(if contours { 16.0 } else { 12.0 })).x_label_area_size(px(38.0)).y_label_area_size(px(left));
    if !p.title.is_empty() {
        builder.caption(p.title.clone(), font(LABEL + 1.0));
    }
    builder.build_cartesian_2d(b.x0..b.x1, b.y0..b.y1).map_err(fail)
}

/// The axes, ticks and grid: numbers with as many decimals as the ticks need, or the bar
/// labels (`bars`) on the category axis.
fn draw_mesh<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, p: &Panel, bars: Option<&[String]>, b: Bounds, scale: f64) -> Result<()> {
    let font = |size: f64| ("sans-serif", size * scale).into_font();
    let (dx, dy) = (decimals(b.x1 - b.x0), decimals(b.y1 - b.y0));
    let x_fmt = move |v: &f64| format!("{v:.dx$}");
    let y_fmt = move |v: &f64| format!("{v:.dy$}");
    let category = |v: &f64| {
        let labels = bars.unwrap_or_default();
        let i = v.round();
        if (v - i).abs() < 0.05 && i >= 0.0 && (i as usize) < labels.len() {
            labels[labels.len() - 1 - i as usize].clone()
        } else {
            String::new()
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(p.x_label.clone())
        .label_style(font(TICK))
        .axis_desc_style(font(LABEL))
        .light_line_style(RGBColor(245, 245, 245))
        .bold_line_style(RGBColor::from(Color::LIGHT))
        .x_labels(6)
        .x_label_formatter(&x_fmt);
    match bars {
        Some(labels) => {
            mesh.y_labels(2 * labels.len() + 1).y_label_formatter(&category).disable_y_mesh();
        }
        None => {
            mesh.y_desc(p.y_label.clone()).y_labels(6).y_label_formatter(&y_fmt);
        }
    }
    mesh.draw().map_err(fail)
}

/// A band, reference line, bar chart or contour layer (lines: see [`draw_line_layer`]).
fn draw_area_layer<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, l: &Layer, b: Bounds, scale: f64) -> Result<()> {
    let px = |v: f64| (v * scale).round() as i32;
    let font = |size: f64| ("sans-serif", size * scale).into_font();
    let width = |w: f64| px(w).max(1) as u32;
    match l {
        Layer::Band { color, points, .. } => {
            let ok: Vec<&(f64, f64, f64)> = points.iter().filter(|p| p.1.is_finite() && p.2.is_finite()).collect();
            let mut poly: Vec<(f64, f64)> = ok.iter().map(|p| (p.0, p.1)).collect();
            poly.extend(ok.iter().rev().map(|p| (p.0, p.2)));
            if poly.len() >= 3 {
                chart.draw_series(std::iter::once(Polygon::new(poly, RGBColor::from(*color).mix(0.2).filled()))).map_err(fail)?;
            } else if let [p] = ok[..] {
                let style = RGBColor::from(*color).mix(0.4).stroke_width(width(6.0));
                chart.draw_series(std::iter::once(PathElement::new(vec![(p.0, p.1), (p.0, p.2)], style))).map_err(fail)?;
            }
        }
        Layer::HLine { y, color, .. } => {
            let style = RGBColor::from(*color).stroke_width(width(1.5));
            chart.draw_series(DashedLineSeries::new(vec![(b.x0, *y), (b.x1, *y)], px(6.0), px(4.0), style)).map_err(fail)?;
        }
        Layer::Bars { color, values, .. } => {
            let n = values.len();
            let style = RGBColor::from(*color).filled();
            chart
                .draw_series(values.iter().enumerate().map(|(i, v)| {
                    let row = (n - 1 - i) as f64;
                    Rectangle::new([(0.0, row - 0.38), (*v, row + 0.38)], style)
                }))
                .map_err(fail)?;
            let grey = font(TICK - 1.0).color(&RGBColor::from(Color::GREY)).pos(Pos::new(HPos::Left, VPos::Center));
            chart
                .draw_series(values.iter().enumerate().map(|(i, v)| Text::new(format!("{v:.1}"), (*v, (n - 1 - i) as f64), grey.clone())))
                .map_err(fail)?;
        }
        Layer::Contours { levels, segments } => {
            let (lo, hi) = levels.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            for (level, segs) in levels.iter().zip(segments) {
                let style = RGBColor::from(level_color((level - lo) / (hi - lo).max(1e-12))).stroke_width(width(1.2));
                chart.draw_series(segs.iter().map(|s| PathElement::new(vec![s[0], s[1]], style))).map_err(fail)?;
            }
        }
        Layer::Line { .. } => {}
    }
    Ok(())
}

/// A line layer (other layers: see [`draw_area_layer`]): its points inside the bounds, solid
/// or dashed, with markers, and the labels that fit.
fn draw_line_layer<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, l: &Layer, b: Bounds, scale: f64) -> Result<()> {
    let Layer::Line { series, color, dashed, markers, labels } = l else { return Ok(()) };
    let px = |v: f64| (v * scale).round() as i32;
    let width = |w: f64| px(w).max(1) as u32;
    let c = RGBColor::from(*color);
    let pts: Vec<(f64, f64)> = series.points.iter().copied().filter(|p| b.contains(p)).collect();
    if *dashed {
        chart.draw_series(DashedLineSeries::new(pts.clone(), px(6.0), px(4.0), c.stroke_width(width(2.0)))).map_err(fail)?;
    } else {
        chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(width(2.0)))).map_err(fail)?;
    }
    // A series of one point draws no line, dashed or not: it gets a marker, so that every
    // series a legend names leaves a mark.
    if *markers || pts.len() == 1 {
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, px(3.0), c.filled()))).map_err(fail)?;
    }
    let style = ("sans-serif", (TICK - 1.5) * scale).into_font().color(&c);
    let labelled: Vec<(&(f64, f64), &String)> = series.points.iter().zip(labels).filter(|(p, t)| b.contains(p) && !t.is_empty()).collect();
    let kept = labels_that_fit(chart, labelled, scale);
    chart
        .draw_series(kept.into_iter().map(|(p, t)| EmptyElement::at(*p) + Text::new(t.clone(), (px(5.0), -px(12.0)), style.clone())))
        .map_err(fail)?;
    Ok(())
}

/// The point labels of a line that do not overprint one already placed: the last point's
/// first, then the first's, then the others in order.
fn labels_that_fit<'p, DB: DrawingBackend>(
    chart: &Chart<'_, DB>,
    labelled: Vec<(&'p (f64, f64), &'p String)>,
    scale: f64,
) -> Vec<(&'p (f64, f64), &'p String)> {
    let mut order: Vec<usize> = (0..labelled.len()).collect();
    if let Some(last) = order.pop() {
        order.insert(0, last);
    }
    let mut placed: Vec<(BackendCoord, f64)> = Vec::new();
    let mut kept = Vec::new();
    for i in order {
        let (p, t) = labelled[i];
        let at = chart.backend_coord(p);
        let w = text_width(t, TICK - 1.5) * scale;
        let h = (TICK + 1.0) * scale;
        if placed.iter().all(|(q, qw)| ((at.0 - q.0).abs() as f64) >= w.max(*qw) || ((at.1 - q.1).abs() as f64) >= h) {
            placed.push((at, w));
            kept.push((p, t));
        }
    }
    kept
}

/// Registers the bundled DejaVu Sans as plotters' "sans-serif" once per process, before any
/// drawing on any backend: with the `png` feature plotters measures and draws text through
/// ab_glyph, which knows only registered fonts, so an SVG drawn before the first PNG would
/// otherwise need a font from the machine. (Without the feature plotters lays SVG text out
/// by its own estimate and needs no font.)
fn ensure_font() {
    #[cfg(feature = "png")]
    {
        static FONT: std::sync::Once = std::sync::Once::new();
        FONT.call_once(|| {
            // Registering a valid font cannot fail; if it did, drawing text would report it.
            let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
        });
    }
}

/// The figure as an SVG document (without the embedded series).
pub(super) fn svg(fig: &Figure) -> Result<String> {
    ensure_font();
    let (w, h) = fig.size();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (w.ceil() as u32, h.ceil() as u32)).into_drawing_area();
        draw(fig, &root, 1.0)?;
        root.present().map_err(fail)?;
    }
    Ok(out)
}

/// The figure as an RGB raster at `scale` pixels per figure unit.
#[cfg(feature = "png")]
pub(super) fn raster(fig: &Figure, scale: f64) -> Result<image::RgbImage> {
    ensure_font();
    let (w, h) = fig.size();
    let (pw, ph) = ((w * scale).ceil() as u32, (h * scale).ceil() as u32);
    let mut buf = vec![255u8; (pw * ph * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (pw, ph)).into_drawing_area();
        draw(fig, &root, scale)?;
        root.present().map_err(fail)?;
    }
    image::RgbImage::from_raw(pw, ph, buf).ok_or_else(|| Error::invalid("the raster has the wrong size", "report this as a bug"))
}
