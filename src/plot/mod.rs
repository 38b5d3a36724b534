//! Figures: a [`Figure`] is a grid of [`Panel`]s (or of images) described as data, drawn on
//! demand with plotters ([`draw`]) as SVG (inline in notebooks, `.svg` files) or, with the `png`
//! feature, as PNG (text from the bundled DejaVu Sans, so no system fonts are needed). Every SVG
//! carries the numbers it was drawn from in a `<desc id="doublewin-series">` (JSON), read back by
//! [`Figure::series_in_svg`]. For a chart of your own, use plotters directly
//! (`doublewin::plotters`, re-exported at the version this crate uses).

mod draw;

use crate::display::evcxr_emit;
use crate::error::{Error, Result};
use image::RgbImage;
use std::path::Path;

/// A chart of one's own, drawn with plotters on a `width` x `height` SVG and shown in a notebook:
/// `draw` gets the drawing area (see the plotters documentation; `doublewin::plotters` is the
/// version this crate uses).
pub fn svg_chart(
    width: u32,
    height: u32,
    draw: impl FnOnce(
        &plotters::drawing::DrawingArea<plotters::backend::SVGBackend, plotters::coord::Shift>,
    ) -> std::result::Result<(), Box<dyn std::error::Error>>,
) -> Result<crate::display::Svg> {
    use plotters::prelude::IntoDrawingArea;
    let mut out = String::new();
    {
        let root = plotters::backend::SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        draw(&root).map_err(|e| Error::invalid(format!("the chart failed: {e}"), "check the chart's code"))?;
        root.present().map_err(|e| Error::invalid(format!("the chart failed: {e:?}"), "check the chart's code"))?;
    }
    Ok(crate::display::Svg(out))
}

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color(pub u8, pub u8, pub u8);

impl Color {
    pub const BLACK: Color = Color(0, 0, 0);
    pub const WHITE: Color = Color(255, 255, 255);
    pub const GREY: Color = Color(110, 110, 110);
    pub const LIGHT: Color = Color(225, 225, 225);
}

/// Width of `text` in figure units, as the layout of titles, notes and legends estimates it.
fn text_width(text: &str, size: f64) -> f64 {
    0.6 * size * text.chars().count() as f64
}

/// One named line of (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series { name: name.into(), points }
    }
}

/// The i-th colour of the figure palette (matplotlib's tab10).
pub fn palette(i: usize) -> Color {
    const TAB10: [Color; 10] = [
        Color(31, 119, 180),
        Color(255, 127, 14),
        Color(44, 160, 44),
        Color(214, 39, 40),
        Color(148, 103, 189),
        Color(140, 86, 75),
        Color(227, 119, 194),
        Color(127, 127, 127),
        Color(188, 189, 34),
        Color(23, 190, 207),
    ];
    TAB10[i % TAB10.len()]
}

/// Something drawn in a panel, in data coordinates.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// A line; `labels` (optional) are written beside the points, e.g. epoch numbers.
    Line { series: Series, color: Color, dashed: bool, markers: bool, labels: Vec<String> },
    /// A filled band between `lower` and `upper` over x: `(x, lower, upper)`.
    Band { name: String, color: Color, points: Vec<(f64, f64, f64)> },
    /// A horizontal reference line (e.g. a dense baseline).
    HLine { name: String, y: f64, color: Color },
    /// Horizontal bars, one per category, top to bottom.
    Bars { name: String, color: Color, labels: Vec<String>, values: Vec<f64> },
    /// Contour lines: for each level, its segments (from [`contour_segments`]).
    Contours { levels: Vec<f64>, segments: Vec<Vec<[(f64, f64); 2]>> },
}

impl Layer {
    pub fn line(series: Series, color: Color) -> Layer {
        Layer::Line { series, color, dashed: false, markers: true, labels: Vec::new() }
    }
    pub fn dashed(series: Series, color: Color) -> Layer {
        Layer::Line { series, color, dashed: true, markers: false, labels: Vec::new() }
    }
}

/// One chart: axes, labels and layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub layers: Vec<Layer>,
    /// Fixed axis ranges; `None` fits the data.
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
}

impl Panel {
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> Panel {
        Panel { title: title.into(), x_label: x_label.into(), y_label: y_label.into(), layers: Vec::new(), x_range: None, y_range: None }
    }
    pub fn with(mut self, layer: Layer) -> Panel {
        self.layers.push(layer);
        self
    }
    pub fn push(&mut self, layer: Layer) {
        self.layers.push(layer);
    }
    pub fn x_range(mut self, lo: f64, hi: f64) -> Panel {
        self.x_range = Some((lo, hi));
        self
    }
    /// Whether the panel has anything to draw (at least one finite point).
    pub fn has_data(&self) -> bool {
        panel_bounds(self).is_some()
    }
    pub fn y_range(mut self, lo: f64, hi: f64) -> Panel {
        self.y_range = Some((lo, hi));
        self
    }
}

/// A row of an image grid: a label, images and a caption under each.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRow {
    pub label: String,
    pub images: Vec<RgbImage>,
    pub captions: Vec<String>,
}

/// A figure: a title, notes under it, and panels laid out in `cols` columns (or an image grid).
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub title: String,
    pub notes: Vec<String>,
    pub panels: Vec<Panel>,
    pub cols: usize,
    /// Size of one panel in figure units (SVG pixels).
    pub panel_size: (f64, f64),
    pub image_rows: Vec<ImageRow>,
}

const TITLE: f64 = 16.0;
const LABEL: f64 = 12.0;
const TICK: f64 = 10.5;

impl Figure {
    /// Panels in a grid of `cols` columns.
    pub fn grid(title: impl Into<String>, panels: Vec<Panel>, cols: usize) -> Result<Figure> {
        let title = title.into();
        if panels.is_empty() {
            return Err(Error::invalid(format!("figure '{title}' has no panels"), "add at least one panel"));
        }
        for p in &panels {
            if panel_bounds(p).is_none() {
                return Err(Error::invalid(
                    format!("panel '{}' of figure '{title}' has no finite points", p.title),
                    "plot after at least one result exists",
                ));
            }
        }
        let (width, mut height) = if panels.len() == 1 { (640.0, 400.0) } else { (340.0, 260.0) };
        // Bar panels get a fixed height per category, so long lists of layers stay legible.
        let bar_rows = panels
            .iter()
            .flat_map(|p| &p.layers)
            .filter_map(|l| if let Layer::Bars { labels, .. } = l { Some(labels.len()) } else { None })
            .max();
        if let Some(rows) = bar_rows {
            height = (70.0 + 20.0 * rows as f64).max(160.0);
        }
        Ok(Figure { title, notes: Vec::new(), panels, cols: cols.max(1), panel_size: (width, height), image_rows: Vec::new() })
    }

    /// Line chart of several series sharing the axes, coloured from the palette.
    pub fn lines(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<Figure> {
        let mut panel = Panel::new("", x_label, y_label);
        for (i, s) in series.iter().enumerate() {
            panel.push(Layer::line(s.clone(), palette(i)));
        }
        Figure::grid(title, vec![panel], 1)
    }

    /// Horizontal bars, e.g. per-layer density of a mask.
    pub fn bars(title: &str, value_label: &str, name: &str, labels: Vec<String>, values: Vec<f64>) -> Result<Figure> {
        if labels.len() != values.len() {
            return Err(Error::invalid(format!("{} labels for {} bars", labels.len(), values.len()), "pass one label per value"));
        }
        Figure::grid(
            title,
            vec![Panel::new("", value_label, "").with(Layer::Bars { name: name.into(), color: palette(0), labels, values })],
            1,
        )
    }

    /// A grid of images: one row per `(row label, batch N x C x H x W in [0, 1])`, with an
    /// optional caption under each image (e.g. the predicted class).
    pub fn image_grid(title: &str, rows: &[(String, tch::Tensor)], captions: &[Vec<String>]) -> Result<Figure> {
        let mut image_rows = Vec::new();
        for (r, (label, batch)) in rows.iter().enumerate() {
            let mut images = Vec::new();
            for k in 0..batch.size()[0] {
                images.push(rgb_image(&batch.f_get(k)?, 1)?);
            }
            image_rows.push(ImageRow { label: label.clone(), images, captions: captions.get(r).cloned().unwrap_or_default() });
        }
        Ok(Figure { title: title.into(), notes: Vec::new(), panels: Vec::new(), cols: 1, panel_size: (84.0, 106.0), image_rows })
    }

    /// Adds a line of text under the title.
    pub fn note(mut self, note: impl Into<String>) -> Figure {
        self.notes.push(note.into());
        self
    }

    pub fn size(&self) -> (f64, f64) {
        let head = 30.0 + 16.0 * self.notes.len() as f64 + 18.0 * self.legend_rows().len() as f64;
        if !self.image_rows.is_empty() {
            let cols = self.image_rows.iter().map(|r| r.images.len()).max().unwrap_or(0) as f64;
            return (110.0 + cols * self.panel_size.0 + 10.0, head + self.image_rows.len() as f64 * self.panel_size.1 + 8.0);
        }
        let rows = self.panels.len().div_ceil(self.cols) as f64;
        let panels_width = self.cols.min(self.panels.len()) as f64 * self.panel_size.0;
        let text = std::iter::once(text_width(&self.title, TITLE)).chain(self.notes.iter().map(|n| text_width(n, LABEL - 1.0)));
        (text.fold(panels_width, |w, t| w.max(t + 40.0)), head + rows * self.panel_size.1)
    }

    /// Legend entries shared by all panels, wrapped into rows that fit the width.
    fn legend_rows(&self) -> Vec<Vec<(String, Color, bool, bool)>> {
        let mut entries: Vec<(String, Color, bool, bool)> = Vec::new();
        for p in &self.panels {
            for l in &p.layers {
                let e = match l {
                    Layer::Line { series, color, dashed, .. } => (series.name.clone(), *color, *dashed, false),
                    Layer::HLine { name, color, .. } => (name.clone(), *color, true, false),
                    Layer::Band { name, color, .. } => (name.clone(), *color, false, true),
                    Layer::Bars { .. } | Layer::Contours { .. } => continue,
                };
                if !e.0.is_empty() && !entries.iter().any(|x| x.0 == e.0) {
                    entries.push(e);
                }
            }
        }
        let width = self.cols.min(self.panels.len()).max(1) as f64 * self.panel_size.0 - 20.0;
        let mut rows: Vec<Vec<(String, Color, bool, bool)>> = Vec::new();
        let mut used = f64::MAX;
        for e in entries {
            let w = legend_entry_width(&e.0);
            if used + w > width {
                rows.push(Vec::new());
                used = 0.0;
            }
            used += w;
            if let Some(r) = rows.last_mut() {
                r.push(e);
            }
        }
        rows
    }

    /// JSON of every series drawn, as embedded in the SVG.
    fn series_json(&self) -> String {
        let mut out = Vec::new();
        for p in &self.panels {
            let x_span = panel_bounds(p).map(|b| (b.0, b.1)).unwrap_or((0.0, 1.0));
            // Each series with the colour it is drawn in (`None`: several, e.g. contours), so a
            // check can find its marks in the SVG (scripts/check_figures.py).
            let mut put = |name: &str, color: Option<Color>, points: Vec<(f64, f64)>| {
                let color = color.map(|c| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2));
                out.push(serde_json::json!({"panel": p.title, "name": name, "color": color, "points": points}))
            };
            for l in &p.layers {
                match l {
                    Layer::Line { series, color, .. } => put(&series.name, Some(*color), series.points.clone()),
                    Layer::Band { name, color, points } => {
                        put(&format!("{name} (lower)"), Some(*color), points.iter().map(|p| (p.0, p.1)).collect());
                        put(&format!("{name} (upper)"), Some(*color), points.iter().map(|p| (p.0, p.2)).collect());
                    }
                    Layer::HLine { name, y, color } => put(name, Some(*color), vec![(x_span.0, *y), (x_span.1, *y)]),
                    Layer::Bars { name, values, color, .. } => {
                        put(name, Some(*color), values.iter().enumerate().map(|(i, v)| (i as f64, *v)).collect())
                    }
                    Layer::Contours { levels, .. } => {
                        put("contour levels", None, levels.iter().enumerate().map(|(i, v)| (i as f64, *v)).collect())
                    }
                }
            }
        }
        serde_json::Value::Array(out).to_string()
    }

    /// The figure as an SVG document, with its title and series embedded; an error when drawing
    /// fails (what [`Figure::save_svg`] and reports use: a failed drawing never becomes a file
    /// that looks like a figure).
    pub fn try_svg(&self) -> Result<String> {
        let head = format!("<title>{}</title><desc id=\"doublewin-series\">{}</desc>", escape(&self.title), escape(&self.series_json()));
        let svg = draw::svg(self).map_err(|e| Error::invalid(format!("the figure '{}': {e}", self.title), "report this as a bug"))?;
        Ok(match svg.find("<svg").and_then(|i| svg[i..].find('>').map(|j| i + j + 1)) {
            Some(at) => format!("{}{head}{}", &svg[..at], &svg[at..]),
            None => svg,
        })
    }

    /// The figure as an SVG document for display: [`Figure::try_svg`], or where drawing fails a
    /// small SVG saying so (a notebook cell shows the error instead of losing the kernel).
    pub fn svg(&self) -> String {
        self.try_svg().unwrap_or_else(|e| {
            format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"40\"><text x=\"10\" y=\"25\">{}</text></svg>",
                escape(&e.to_string())
            )
        })
    }

    /// The figure as an RGB raster at `dpr` pixels per figure unit.
    #[cfg(feature = "png")]
    pub fn raster(&self, dpr: f64) -> Result<RgbImage> {
        draw::raster(self, dpr)
    }

    /// The figure as PNG bytes (2 pixels per figure unit).
    #[cfg(feature = "png")]
    pub fn png(&self) -> Result<Vec<u8>> {
        encode_png(&self.raster(2.0)?)
    }

    /// The series a figure was built from, read back out of its SVG.
    pub fn series(&self) -> Result<Vec<Series>> {
        Figure::series_in_svg(&self.try_svg()?)
    }

    /// Reads the series embedded in an SVG written by this module.
    pub fn series_in_svg(svg: &str) -> Result<Vec<Series>> {
        const TAG: &str = "<desc id=\"doublewin-series\">";
        let start = svg.find(TAG).ok_or_else(|| Error::invalid("SVG carries no series data", "use an SVG written by doublewin"))?;
        let rest = &svg[start + TAG.len()..];
        let json = unescape(&rest[..rest.find("</desc>").unwrap_or(rest.len())]);
        let v: Vec<serde_json::Value> =
            serde_json::from_str(&json).map_err(|e| Error::invalid(format!("series data unreadable: {e}"), "report this as a bug"))?;
        Ok(v.iter()
            .map(|s| Series {
                name: s["name"].as_str().unwrap_or_default().to_string(),
                points: s["points"]
                    .as_array()
                    .map(|a| a.iter().map(|p| (p[0].as_f64().unwrap_or(f64::NAN), p[1].as_f64().unwrap_or(f64::NAN))).collect())
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// Writes the SVG atomically.
    pub fn save_svg(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::fsio::write_atomic(path.as_ref(), self.try_svg()?.as_bytes())
    }

    /// Writes the PNG atomically.
    #[cfg(feature = "png")]
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::fsio::write_atomic(path.as_ref(), &self.png()?)
    }

    /// Writes `.svg` or `.png`, chosen by the extension.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
            Some("svg") => self.save_svg(path),
            #[cfg(feature = "png")]
            Some("png") => self.save_png(path),
            _ => Err(Error::invalid(
                format!("cannot write {} as an image", path.display()),
                "end the file name in .svg (or .png, with the crate's `png` feature)",
            )),
        }
    }

    pub fn evcxr_display(&self) {
        evcxr_emit("image/svg+xml", &self.svg());
    }
}

/// In a terminal: the title and what the figure holds (save it to look at it).
impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (w, h) = self.size();
        writeln!(f, "Figure '{}' ({w:.0} x {h:.0}): {} panels, {} image rows", self.title, self.panels.len(), self.image_rows.len())?;
        for p in &self.panels {
            let lines = p.layers.iter().filter(|l| matches!(l, Layer::Line { .. })).count();
            writeln!(f, "  panel '{}': {lines} lines, {} layers in all", p.title, p.layers.len())?;
        }
        write!(f, "  save with .save(\"figure.png\") or .save(\"figure.svg\")")
    }
}

fn escape(s: &str) -> String {
    crate::display::escape_html(s)
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

fn legend_entry_width(name: &str) -> f64 {
    36.0 + text_width(name, LABEL - 1.0)
}

/// Data bounds (x0, x1, y0, y1) of a panel, or `None` when nothing finite is drawn.
fn panel_bounds(p: &Panel) -> Option<(f64, f64, f64, f64)> {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for l in &p.layers {
        match l {
            Layer::Line { series, .. } => series.points.iter().for_each(|&(x, y)| {
                xs.push(x);
                ys.push(y)
            }),
            Layer::Band { points, .. } => points.iter().for_each(|&(x, lo, hi)| {
                xs.push(x);
                ys.extend([lo, hi])
            }),
            Layer::HLine { y, .. } => ys.push(*y),
            Layer::Bars { values, .. } => {
                xs.push(0.0);
                xs.extend(values.iter().copied());
                ys.extend([-0.6, values.len() as f64 - 0.4]);
            }
            Layer::Contours { segments, .. } => segments.iter().flatten().for_each(|s| {
                for &(x, y) in s {
                    xs.push(x);
                    ys.push(y)
                }
            }),
        }
    }
    let fin = |v: &[f64]| {
        let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        (!f.is_empty()).then(|| f.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x))))
    };
    let (y0, y1) = p.y_range.or_else(|| fin(&ys))?;
    let (x0, x1) = match p.x_range.or_else(|| fin(&xs)) {
        Some(r) => r,
        None if p.layers.iter().any(|l| matches!(l, Layer::HLine { .. })) => (0.0, 1.0),
        None => return None,
    };
    Some((x0, x1, y0, y1))
}

/// Viridis-like colour map for contour levels (t in [0, 1]).
fn level_color(t: f64) -> Color {
    const STOPS: [(f64, f64, f64); 5] =
        [(68.0, 1.0, 84.0), (59.0, 82.0, 139.0), (33.0, 145.0, 140.0), (94.0, 201.0, 98.0), (253.0, 231.0, 37.0)];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let (i, f) = ((t.floor() as usize).min(STOPS.len() - 2), t - t.floor().min((STOPS.len() - 2) as f64));
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    Color(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Marching squares: the segments where the bilinear interpolation of `z` (rows over `ys`,
/// columns over `xs`) crosses `level`. Saddles are split by the cell's mean.
pub fn contour_segments(xs: &[f64], ys: &[f64], z: &[Vec<f64>], level: f64) -> Vec<[(f64, f64); 2]> {
    let mut out = Vec::new();
    for j in 0..ys.len().saturating_sub(1) {
        for i in 0..xs.len().saturating_sub(1) {
            // Corners counter-clockwise from bottom-left: (i,j) (i+1,j) (i+1,j+1) (i,j+1).
            let corners = [
                (xs[i], ys[j], z[j][i]),
                (xs[i + 1], ys[j], z[j][i + 1]),
                (xs[i + 1], ys[j + 1], z[j + 1][i + 1]),
                (xs[i], ys[j + 1], z[j + 1][i]),
            ];
            if corners.iter().any(|c| !c.2.is_finite()) {
                continue;
            }
            let cross = |a: (f64, f64, f64), b: (f64, f64, f64)| {
                let t = (level - a.2) / (b.2 - a.2);
                (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1))
            };
            let mut points = Vec::new();
            for k in 0..4 {
                let (a, b) = (corners[k], corners[(k + 1) % 4]);
                if (a.2 >= level) != (b.2 >= level) {
                    points.push((k, cross(a, b)));
                }
            }
            match points.len() {
                2 => out.push([points[0].1, points[1].1]),
                4 => {
                    let mean = corners.iter().map(|c| c.2).sum::<f64>() / 4.0;
                    // Edges are numbered after their first corner. When the centre is on corner
                    // 0's side, corners 0 and 2 connect and the lines cut off corners 1 and 3.
                    let above0 = corners[0].2 >= level;
                    if above0 == (mean >= level) {
                        out.push([points[0].1, points[1].1]);
                        out.push([points[2].1, points[3].1]);
                    } else {
                        out.push([points[3].1, points[0].1]);
                        out.push([points[1].1, points[2].1]);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// PNG bytes of one image (C x H x W floats in [0, 1], C = 1 or 3), scaled up `scale` times.
pub fn png_bytes(image: &tch::Tensor, scale: u32) -> Result<Vec<u8>> {
    encode_png(&rgb_image(image, scale)?)
}

fn encode_png(image: &RgbImage) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| Error::invalid(format!("PNG encoding failed: {e}"), "report this as a bug"))?;
    Ok(out.into_inner())
}

/// One image tensor (C x H x W in [0, 1]) as an RGB buffer, scaled up `scale` times.
pub fn rgb_image(image: &tch::Tensor, scale: u32) -> Result<RgbImage> {
    let size = image.size();
    let [c, h, w]: [i64; 3] = size.clone().try_into().map_err(|_| Error::invalid(format!("image of shape {size:?}"), "pass C x H x W"))?;
    let px: Vec<u8> =
        Vec::<f32>::try_from(image.f_to_device(tch::Device::Cpu)?.f_clamp(0.0, 1.0)?.f_mul_scalar(255.0)?.f_round()?.f_flatten(0, -1)?)?
            .into_iter()
            .map(|v| v as u8)
            .collect();
    let (h, w, scale) = (h as u32, w as u32, scale.max(1));
    Ok(RgbImage::from_fn(w * scale, h * scale, |x, y| {
        let (i, j) = ((y / scale) as usize, (x / scale) as usize);
        let at = |ch: usize| px[ch * (h * w) as usize + i * w as usize + j];
        if c == 1 {
            image::Rgb([at(0); 3])
        } else {
            image::Rgb([at(0), at(1), at(2)])
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_carries_every_series_and_png_decodes() {
        let a = Series::new("ticket", vec![(20.0, 90.5), (36.0, 89.25)]);
        let panel = Panel::new("SA", "sparsity (%)", "accuracy (%)")
            .with(Layer::line(a.clone(), palette(0)))
            .with(Layer::HLine { name: "dense".into(), y: 91.0, color: palette(0) })
            .with(Layer::Band { name: "seeds".into(), color: palette(0), points: vec![(20.0, 90.0, 91.0), (36.0, 88.0, 90.0)] });
        let fig = Figure::grid("t <&>", vec![panel.clone(), panel], 2).unwrap();
        let s = fig.series().unwrap();
        assert_eq!(s.len(), 8);
        assert_eq!(s[0], a);
        assert_eq!(s[1].points, vec![(20.0, 91.0), (36.0, 91.0)]);
        #[cfg(feature = "png")]
        {
            let png = fig.png().unwrap();
            let img = image::load_from_memory(&png).unwrap();
            let (w, h) = fig.size();
            assert_eq!((img.width(), img.height()), ((2.0 * w).ceil() as u32, (2.0 * h).ceil() as u32));
            // The line colour is present in the raster.
            let rgb = img.to_rgb8();
            assert!(rgb.pixels().any(|p| p.0 == [31, 119, 180]));
        }
    }

    #[test]
    fn marching_squares_traces_a_circle() {
        let xs: Vec<f64> = (0..41).map(|i| -1.0 + i as f64 * 0.05).collect();
        let z: Vec<Vec<f64>> = xs.iter().map(|y| xs.iter().map(|x| x * x + y * y).collect()).collect();
        let segs = contour_segments(&xs, &xs, &z, 0.25);
        assert!(segs.len() > 20);
        for s in &segs {
            for p in s {
                let r = (p.0 * p.0 + p.1 * p.1).sqrt();
                assert!((r - 0.5).abs() < 0.01, "point {p:?} at radius {r}");
            }
        }
    }
}
