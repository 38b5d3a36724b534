//! Figures: a [`Figure`] holds an SVG document, renders inline in notebooks and saves to disk.
//! Text is left to the SVG viewer (a browser), so no fonts are needed to draw.

use crate::display::evcxr_emit;
use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;

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

/// A rendered figure (SVG).
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub title: String,
    pub svg: String,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::invalid(format!("drawing failed: {e}"), "report this as a bug")
}

impl Figure {
    /// Line chart of several series sharing the axes, with a legend. Each series' data is also
    /// written into the SVG as a `<desc>` (JSON), so the numbers behind a figure stay inspectable.
    pub fn lines(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<Figure> {
        let all: Vec<(f64, f64)> =
            series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        if all.is_empty() {
            return Err(Error::invalid(format!("figure '{title}' has no finite points"), "plot after at least one epoch"));
        }
        let (mut x0, mut x1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (mut y0, mut y1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        if x1 - x0 < 1e-9 {
            x0 -= 0.5;
            x1 += 0.5;
        }
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        y0 -= pad;
        y1 += pad;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (640, 400)).into_drawing_area();
            root.fill(&WHITE).map_err(plot_err)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(plot_err)?;
            chart.configure_mesh().x_desc(x_label).y_desc(y_label).light_line_style(RGBColor(235, 235, 235)).draw().map_err(plot_err)?;
            for (i, s) in series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(s.name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(plot_err)?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(plot_err)?;
            root.present().map_err(plot_err)?;
        }
        let data: Vec<serde_json::Value> = series.iter().map(|s| serde_json::json!({"name": s.name, "points": s.points})).collect();
        let desc =
            format!("<desc id=\"doublewin-series\">{}</desc>", crate::display::escape_html(&serde_json::Value::Array(data).to_string()));
        if let Some(pos) = svg.find('>') {
            svg.insert_str(pos + 1, &desc);
        }
        Ok(Figure { title: title.to_string(), svg })
    }

    /// The series a figure was built from, parsed back out of its SVG.
    pub fn series(&self) -> Result<Vec<Series>> {
        let start = self
            .svg
            .find("<desc id=\"doublewin-series\">")
            .ok_or_else(|| Error::invalid("figure carries no series data", "build figures with Figure::lines"))?;
        let rest = &self.svg[start + "<desc id=\"doublewin-series\">".len()..];
        let json = rest[..rest.find("</desc>").unwrap_or(rest.len())]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
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
        crate::fsio::write_atomic(path.as_ref(), self.svg.as_bytes())
    }

    pub fn evcxr_display(&self) {
        evcxr_emit("image/svg+xml", &self.svg);
    }
}

/// PNG bytes of one image (C x H x W floats in [0, 1], C = 1 or 3), scaled up `scale` times.
pub fn png_bytes(image: &tch::Tensor, scale: u32) -> Result<Vec<u8>> {
    let size = image.size();
    let [c, h, w]: [i64; 3] = size.clone().try_into().map_err(|_| Error::invalid(format!("image of shape {size:?}"), "pass C x H x W"))?;
    let px: Vec<u8> =
        Vec::<f32>::try_from(image.f_to_device(tch::Device::Cpu)?.f_clamp(0.0, 1.0)?.f_mul_scalar(255.0)?.f_round()?.f_flatten(0, -1)?)?
            .into_iter()
            .map(|v| v as u8)
            .collect();
    let (h, w) = (h as u32, w as u32);
    let img = image::RgbImage::from_fn(w * scale, h * scale, |x, y| {
        let (i, j) = ((y / scale) as usize, (x / scale) as usize);
        let at = |ch: usize| px[ch * (h * w) as usize + i * w as usize + j];
        if c == 1 {
            image::Rgb([at(0); 3])
        } else {
            image::Rgb([at(0), at(1), at(2)])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| Error::invalid(format!("PNG encoding failed: {e}"), "report this as a bug"))?;
    Ok(out.into_inner())
}

impl Figure {
    /// A grid of images: one row per `(row label, batch N x C x H x W in [0, 1])`, with an
    /// optional caption under each image (e.g. the predicted class).
    pub fn image_grid(title: &str, rows: &[(String, tch::Tensor)], captions: &[Vec<String>]) -> Result<Figure> {
        use base64::Engine;
        let (cell, label_w, top) = (84i64, 110i64, 36i64);
        let cols = rows.iter().map(|(_, t)| t.size()[0]).max().unwrap_or(0);
        let row_h = cell + 22;
        let (width, height) = (label_w + cols * cell + 10, top + rows.len() as i64 * row_h + 8);
        let esc = crate::display::escape_html;
        let mut svg = format!(
            "<svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" xmlns=\"http://www.w3.org/2000/svg\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/><text x=\"{}\" y=\"22\" font-family=\"sans-serif\" font-size=\"16\" text-anchor=\"middle\">{}</text>",
            width / 2,
            esc(title)
        );
        for (r, (label, batch)) in rows.iter().enumerate() {
            let y = top + r as i64 * row_h;
            svg += &format!("<text x=\"4\" y=\"{}\" font-family=\"sans-serif\" font-size=\"13\">{}</text>", y + cell / 2, esc(label));
            for k in 0..batch.size()[0] {
                let img = batch.f_get(k)?;
                let side = img.size()[1].max(1);
                let scale = ((cell - 4) / side).max(1) as u32;
                let data = base64::engine::general_purpose::STANDARD.encode(png_bytes(&img, scale)?);
                let x = label_w + k * cell;
                svg += &format!(
                    "<image x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{}\" href=\"data:image/png;base64,{data}\"/>",
                    cell - 4,
                    cell - 4
                );
                if let Some(c) = captions.get(r).and_then(|c| c.get(k as usize)) {
                    svg += &format!(
                        "<text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
                        x + (cell - 4) / 2,
                        y + cell + 12,
                        esc(c)
                    );
                }
            }
        }
        svg += "</svg>";
        Ok(Figure { title: title.to_string(), svg })
    }
}
