//! The RGB raster surface for PNG files (feature `png`): anti-aliased lines, a scanline fill,
//! and text from the bundled font8x8 bitmap font, so saving a PNG needs no system fonts. Figure
//! units are scaled by `dpr` (device pixels per unit).

use super::canvas::{Anchor, Canvas, Color, TextStyle};
use image::{Rgb, RgbImage};

/// An RGB raster; figure units are multiplied by `dpr` (device pixels per unit).
pub struct RasterCanvas {
    pub image: RgbImage,
    dpr: f64,
}

impl RasterCanvas {
    pub fn new(width: f64, height: f64, dpr: f64) -> RasterCanvas {
        let (w, h) = ((width * dpr).ceil().max(1.0) as u32, (height * dpr).ceil().max(1.0) as u32);
        RasterCanvas { image: RgbImage::from_pixel(w, h, Rgb([255, 255, 255])), dpr }
    }

    fn blend(&mut self, x: i64, y: i64, color: Color, alpha: f64) {
        if x < 0 || y < 0 || x >= self.image.width() as i64 || y >= self.image.height() as i64 || alpha <= 0.0 {
            return;
        }
        let a = alpha.min(1.0);
        let p = self.image.get_pixel_mut(x as u32, y as u32);
        for (c, v) in p.0.iter_mut().zip([color.0, color.1, color.2]) {
            *c = (*c as f64 * (1.0 - a) + v as f64 * a).round() as u8;
        }
    }

    /// An anti-aliased segment of width `w` (device pixels): coverage from the distance of each
    /// pixel centre to the segment.
    fn segment(&mut self, (ax, ay): (f64, f64), (bx, by): (f64, f64), w: f64, color: Color) {
        let r = w / 2.0;
        let (x0, x1) = ((ax.min(bx) - r - 1.0).floor() as i64, (ax.max(bx) + r + 1.0).ceil() as i64);
        let (y0, y1) = ((ay.min(by) - r - 1.0).floor() as i64, (ay.max(by) + r + 1.0).ceil() as i64);
        let (dx, dy) = (bx - ax, by - ay);
        let len2 = (dx * dx + dy * dy).max(1e-12);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
                let t = (((px - ax) * dx + (py - ay) * dy) / len2).clamp(0.0, 1.0);
                let d = ((px - ax - t * dx).powi(2) + (py - ay - t * dy).powi(2)).sqrt();
                let coverage = (r + 0.5 - d).clamp(0.0, 1.0);
                self.blend(x, y, color, coverage);
            }
        }
    }
}

/// Splits a polyline into dashes of `on` then gaps of `off` (device pixels).
fn dashes(points: &[(f64, f64)], on: f64, off: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut current = vec![];
    let (mut drawing, mut left) = (true, on);
    for pair in points.windows(2) {
        let (mut a, b) = (pair[0], pair[1]);
        let mut seg = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        if drawing && current.is_empty() {
            current.push(a);
        }
        while seg > left {
            let t = left / seg;
            let cut = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
            if drawing {
                current.push(cut);
                out.push(std::mem::take(&mut current));
            } else {
                current = vec![cut];
            }
            drawing = !drawing;
            seg -= left;
            left = if drawing { on } else { off };
            a = cut;
        }
        left -= seg;
        if drawing {
            current.push(b);
        }
    }
    if current.len() > 1 {
        out.push(current);
    }
    out
}

impl Canvas for RasterCanvas {
    fn polyline(&mut self, points: &[(f64, f64)], color: Color, width: f64, dashed: bool) {
        let px: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (x * self.dpr, y * self.dpr)).collect();
        let w = (width * self.dpr).max(1.0);
        let pieces = if dashed { dashes(&px, 6.0 * self.dpr, 4.0 * self.dpr) } else { vec![px] };
        for piece in pieces {
            for pair in piece.windows(2) {
                self.segment(pair[0], pair[1], w, color);
            }
        }
    }

    /// Even-odd scanline fill at pixel centres.
    fn polygon(&mut self, points: &[(f64, f64)], color: Color, opacity: f64) {
        if points.len() < 3 {
            return;
        }
        let px: Vec<(f64, f64)> = points.iter().map(|&(x, y)| (x * self.dpr, y * self.dpr)).collect();
        let (y0, y1) = px.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        for y in y0.floor().max(0.0) as i64..=y1.ceil().min(self.image.height() as f64) as i64 {
            let cy = y as f64 + 0.5;
            let mut xs: Vec<f64> = Vec::new();
            for i in 0..px.len() {
                let (a, b) = (px[i], px[(i + 1) % px.len()]);
                if (a.1 <= cy) != (b.1 <= cy) {
                    xs.push(a.0 + (cy - a.1) / (b.1 - a.1) * (b.0 - a.0));
                }
            }
            xs.sort_by(|a, b| a.total_cmp(b));
            for pair in xs.chunks(2) {
                if let [from, to] = pair {
                    for x in (from - 0.5).round() as i64..(to - 0.5).round() as i64 {
                        self.blend(x, y, color, opacity);
                    }
                }
            }
        }
    }

    fn circle(&mut self, (cx, cy): (f64, f64), radius: f64, color: Color) {
        let (cx, cy, r) = (cx * self.dpr, cy * self.dpr, radius * self.dpr);
        for y in (cy - r - 1.0).floor() as i64..=(cy + r + 1.0).ceil() as i64 {
            for x in (cx - r - 1.0).floor() as i64..=(cx + r + 1.0).ceil() as i64 {
                let d = ((x as f64 + 0.5 - cx).powi(2) + (y as f64 + 0.5 - cy).powi(2)).sqrt();
                self.blend(x, y, color, (r + 0.5 - d).clamp(0.0, 1.0));
            }
        }
    }

    /// Bitmap text: each glyph of the 8x8 font scaled (nearest neighbour) so that its 7 inked
    /// columns fill the advance per character that [`text_width`] assumes.
    fn text(&mut self, (x, y): (f64, f64), text: &str, style: TextStyle) {
        let advance = 0.6 * style.size * self.dpr;
        let k = advance / 7.0;
        let total = advance * text.chars().count() as f64;
        let shift = match style.anchor {
            Anchor::Start => 0.0,
            Anchor::Middle => total / 2.0,
            Anchor::End => total,
        };
        let (ox, oy) = (x * self.dpr, y * self.dpr);
        let side = (8.0 * k).ceil() as i64;
        for (i, ch) in text.chars().enumerate() {
            let glyph = glyph(ch);
            let along = i as f64 * advance - shift;
            for v in 0..side {
                for u in 0..side {
                    let (col, row) = ((u as f64 / k) as usize, (v as f64 / k) as usize);
                    if row > 7 || col > 7 || glyph[row] >> col & 1 == 0 {
                        continue;
                    }
                    // Row 7 of the font sits just below the baseline.
                    let (du, dv) = ((along + u as f64).round() as i64, v - (7.0 * k).round() as i64);
                    let (px, py) = if style.vertical { (ox as i64 + dv, oy as i64 - du) } else { (ox as i64 + du, oy as i64 + dv) };
                    self.blend(px, py, style.color, 1.0);
                }
            }
        }
    }

    fn image(&mut self, (x, y): (f64, f64), (w, h): (f64, f64), image: &RgbImage) {
        let (x0, y0, w, h) = ((x * self.dpr) as i64, (y * self.dpr) as i64, (w * self.dpr) as i64, (h * self.dpr) as i64);
        if image.width() == 0 || image.height() == 0 {
            return;
        }
        for j in 0..h.max(0) {
            for i in 0..w.max(0) {
                let sx = (i * image.width() as i64 / w.max(1)) as u32;
                let sy = (j * image.height() as i64 / h.max(1)) as u32;
                let p = image.get_pixel(sx.min(image.width() - 1), sy.min(image.height() - 1));
                self.blend(x0 + i, y0 + j, Color(p[0], p[1], p[2]), 1.0);
            }
        }
    }
}

/// The font8x8 glyph of a character (basic Latin and Latin-1; anything else draws as '?').
fn glyph(ch: char) -> [u8; 8] {
    use font8x8::legacy::{BASIC_LEGACY, LATIN_LEGACY};
    let code = ch as usize;
    match code {
        0..=127 => BASIC_LEGACY[code],
        0xA0..=0xFF => LATIN_LEGACY[code - 0xA0],
        _ => BASIC_LEGACY['?' as usize],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raster_text_draws_ink_where_the_svg_layout_puts_it() {
        let mut c = RasterCanvas::new(100.0, 30.0, 2.0);
        c.text((10.0, 20.0), "Ab", TextStyle::new(12.0));
        let dark: Vec<(u32, u32)> = c.image.enumerate_pixels().filter(|(_, _, p)| p[0] < 128).map(|(x, y, _)| (x, y)).collect();
        assert!(!dark.is_empty());
        let max_x = dark.iter().map(|p| p.0).max().unwrap_or(0) as f64 / 2.0;
        assert!(
            dark.iter().all(|p| p.0 >= 20) && max_x <= 10.0 + super::super::canvas::text_width("Ab", 12.0) + 1.0,
            "ink outside the text box"
        );
    }

    #[test]
    fn dashes_cover_about_on_over_period() {
        let d = dashes(&[(0.0, 0.0), (100.0, 0.0)], 6.0, 4.0);
        let covered: f64 = d.iter().map(|p| p.last().unwrap().0 - p[0].0).sum();
        assert!((covered - 60.0).abs() < 6.1, "covered {covered}");
    }
}
