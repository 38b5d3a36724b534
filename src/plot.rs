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
        Series {
            name: name.into(),
            points,
        }
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
        let all: Vec<(f64, f64)> = series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if all.is_empty() {
            return Err(Error::invalid(
                format!("figure '{title}' has no finite points"),
                "plot after at least one epoch",
            ));
        }
        let (mut x0, mut x1) = all
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (mut y0, mut y1) = all
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
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
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(plot_err)?;
            for (i, s) in series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(plot_err)?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(plot_err)?;
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
        let data: Vec<serde_json::Value> = series
            .iter()
            .map(|s| serde_json::json!({"name": s.name, "points": s.points}))
            .collect();
        let desc = format!(
            "<desc id=\"doublewin-series\">{}</desc>",
            crate::display::escape_html(&serde_json::Value::Array(data).to_string())
        );
        if let Some(pos) = svg.find('>') {
            svg.insert_str(pos + 1, &desc);
        }
        Ok(Figure {
            title: title.to_string(),
            svg,
        })
    }

    /// The series a figure was built from, parsed back out of its SVG.
    pub fn series(&self) -> Result<Vec<Series>> {
        let start = self
            .svg
            .find("<desc id=\"doublewin-series\">")
            .ok_or_else(|| {
                Error::invalid(
                    "figure carries no series data",
                    "build figures with Figure::lines",
                )
            })?;
        let rest = &self.svg[start + "<desc id=\"doublewin-series\">".len()..];
        let json = rest[..rest.find("</desc>").unwrap_or(rest.len())]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        let v: Vec<serde_json::Value> = serde_json::from_str(&json).map_err(|e| {
            Error::invalid(
                format!("series data unreadable: {e}"),
                "report this as a bug",
            )
        })?;
        Ok(v.iter()
            .map(|s| Series {
                name: s["name"].as_str().unwrap_or_default().to_string(),
                points: s["points"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|p| {
                                (
                                    p[0].as_f64().unwrap_or(f64::NAN),
                                    p[1].as_f64().unwrap_or(f64::NAN),
                                )
                            })
                            .collect()
                    })
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
