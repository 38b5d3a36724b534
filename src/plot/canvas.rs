//! The drawing trait and the SVG surface (for browsers and notebooks). The RGB raster for PNG
//! files is in `raster.rs`, behind the `png` feature. Coordinates are in figure units.

use image::RgbImage;

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color(pub u8, pub u8, pub u8);

impl Color {
    pub const BLACK: Color = Color(0, 0, 0);
    pub const WHITE: Color = Color(255, 255, 255);
    pub const GREY: Color = Color(110, 110, 110);
    pub const LIGHT: Color = Color(232, 232, 232);

    fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// Text as drawn: size in figure units, optionally rotated to read bottom-up (y-axis labels).
#[derive(Debug, Clone, Copy)]
pub struct TextStyle {
    pub size: f64,
    pub anchor: Anchor,
    pub vertical: bool,
    pub color: Color,
}

impl TextStyle {
    pub fn new(size: f64) -> TextStyle {
        TextStyle { size, anchor: Anchor::Start, vertical: false, color: Color::BLACK }
    }
    pub fn anchor(mut self, anchor: Anchor) -> TextStyle {
        self.anchor = anchor;
        self
    }
    pub fn vertical(mut self) -> TextStyle {
        self.vertical = true;
        self
    }
    pub fn color(mut self, color: Color) -> TextStyle {
        self.color = color;
        self
    }
}

/// Width of `text` in figure units; both surfaces lay text out with this advance per character.
pub fn text_width(text: &str, size: f64) -> f64 {
    0.6 * size * text.chars().count() as f64
}

pub trait Canvas {
    fn polyline(&mut self, points: &[(f64, f64)], color: Color, width: f64, dashed: bool);
    fn polygon(&mut self, points: &[(f64, f64)], color: Color, opacity: f64);
    fn circle(&mut self, center: (f64, f64), radius: f64, color: Color);
    fn text(&mut self, at: (f64, f64), text: &str, style: TextStyle);
    fn image(&mut self, at: (f64, f64), size: (f64, f64), image: &RgbImage);

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: Color) {
        self.polygon(&[(x, y), (x + w, y), (x + w, y + h), (x, y + h)], fill, 1.0);
    }
    fn frame(&mut self, x: f64, y: f64, w: f64, h: f64, color: Color, width: f64) {
        self.polyline(&[(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)], color, width, false);
    }
}

/// SVG document under construction.
pub struct SvgCanvas {
    body: String,
    size: (f64, f64),
}

impl SvgCanvas {
    pub fn new(width: f64, height: f64) -> SvgCanvas {
        SvgCanvas { body: String::new(), size: (width, height) }
    }

    /// The finished document; `head` (e.g. a `<desc>`) goes first inside the root element.
    pub fn finish(self, head: &str) -> String {
        let (w, h) = self.size;
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"DejaVu Sans, Verdana, sans-serif\">{head}<rect width=\"100%\" height=\"100%\" fill=\"white\"/>{}</svg>",
            self.body
        )
    }
}

fn svg_points(points: &[(f64, f64)]) -> String {
    points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ")
}

impl Canvas for SvgCanvas {
    fn polyline(&mut self, points: &[(f64, f64)], color: Color, width: f64, dashed: bool) {
        let dash = if dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        self.body += &format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{width}\" stroke-linejoin=\"round\"{dash}/>",
            svg_points(points),
            color.hex()
        );
    }
    fn polygon(&mut self, points: &[(f64, f64)], color: Color, opacity: f64) {
        self.body += &format!("<polygon points=\"{}\" fill=\"{}\" fill-opacity=\"{opacity:.2}\"/>", svg_points(points), color.hex());
    }
    fn circle(&mut self, (x, y): (f64, f64), radius: f64, color: Color) {
        self.body += &format!("<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{radius}\" fill=\"{}\"/>", color.hex());
    }
    fn text(&mut self, (x, y): (f64, f64), text: &str, style: TextStyle) {
        let anchor = match style.anchor {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        let rotate = if style.vertical { format!(" transform=\"rotate(-90 {x:.1} {y:.1})\"") } else { String::new() };
        self.body += &format!(
            "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{}\" text-anchor=\"{anchor}\" fill=\"{}\"{rotate}>{}</text>",
            style.size,
            style.color.hex(),
            crate::display::escape_html(text)
        );
    }
    fn image(&mut self, (x, y): (f64, f64), (w, h): (f64, f64), image: &RgbImage) {
        use base64::Engine;
        let mut png = std::io::Cursor::new(Vec::new());
        // Encoding an in-memory RGB buffer cannot fail; an empty image is skipped.
        if image.write_to(&mut png, image::ImageFormat::Png).is_ok() {
            let data = base64::engine::general_purpose::STANDARD.encode(png.into_inner());
            self.body += &format!(
                "<image x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{data}\"/>"
            );
        }
    }
}
