//! Rendering results for people: a [`Table`] that prints as aligned text in a terminal and as
//! HTML in a notebook, and the evcxr display protocol shared by every result type.

/// Prints `content` as the given MIME type for the evcxr Jupyter kernel.
pub fn evcxr_emit(mime: &str, content: &str) {
    println!("EVCXR_BEGIN_CONTENT {mime}\n{content}\nEVCXR_END_CONTENT");
}

/// Escapes text for HTML.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Sentences for people: what a notebook cell shows as paragraphs (HTML `<p>` per line of the
/// text) and a terminal prints as plain lines, never as a Rust string literal with quotes and
/// `\n` escapes. `Prose::new(verdict.conclusion())`, or several lines with [`Prose::lines`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prose {
    pub paragraphs: Vec<String>,
}

impl Prose {
    /// One text; each of its lines is a paragraph.
    pub fn new(text: impl Into<String>) -> Prose {
        Prose { paragraphs: text.into().lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect() }
    }
    /// Several texts, each a paragraph (or several, where it holds line breaks).
    pub fn lines<S: Into<String>>(texts: impl IntoIterator<Item = S>) -> Prose {
        Prose { paragraphs: texts.into_iter().flat_map(|t| Prose::new(t).paragraphs).collect() }
    }
    /// This prose and one more text after it.
    pub fn and(mut self, text: impl Into<String>) -> Prose {
        self.paragraphs.extend(Prose::new(text).paragraphs);
        self
    }
    pub fn to_html(&self) -> String {
        self.paragraphs.iter().map(|p| format!("<p style=\"font-family:sans-serif;max-width:60em\">{}</p>", escape_html(p))).collect()
    }
    pub fn evcxr_display(&self) {
        evcxr_emit("text/html", &self.to_html());
    }
}

impl std::fmt::Display for Prose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.paragraphs.join("\n"))
    }
}

/// A simple table of strings with a title.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: impl Into<String>, headers: &[&str]) -> Table {
        Table { title: title.into(), headers: headers.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// An HTML table (numbers right-aligned).
    pub fn to_html(&self) -> String {
        let mut s = String::from("<table style=\"border-collapse:collapse;font-family:sans-serif;font-size:13px\">");
        if !self.title.is_empty() {
            s += &format!("<caption style=\"font-weight:bold;text-align:left;padding:4px 0\">{}</caption>", escape_html(&self.title));
        }
        s += "<thead><tr>";
        for h in &self.headers {
            s += &format!("<th style=\"border-bottom:1px solid #888;padding:2px 8px;text-align:left\">{}</th>", escape_html(h));
        }
        s += "</tr></thead><tbody>";
        for r in &self.rows {
            s += "<tr>";
            for c in r {
                let align = if c.trim_end_matches('%').parse::<f64>().is_ok() { "right" } else { "left" };
                s += &format!("<td style=\"padding:2px 8px;text-align:{align}\">{}</td>", escape_html(c));
            }
            s += "</tr>";
        }
        s + "</tbody></table>"
    }

    /// A Markdown table under a `###` heading with the title.
    pub fn to_markdown(&self) -> String {
        let mut s = format!("### {}\n\n| {} |\n|{}\n", self.title, self.headers.join(" | "), " --- |".repeat(self.headers.len()));
        for r in &self.rows {
            s += &format!("| {} |\n", r.join(" | "));
        }
        s + "\n"
    }

    pub fn evcxr_display(&self) {
        evcxr_emit("text/html", &self.to_html());
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cols = self.headers.len();
        let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        if !self.title.is_empty() {
            writeln!(f, "{}", self.title)?;
        }
        let line = |f: &mut std::fmt::Formatter<'_>, cells: &[String]| -> std::fmt::Result {
            let parts: Vec<String> = cells.iter().enumerate().take(cols).map(|(i, c)| format!("{c:<w$}", w = width[i])).collect();
            writeln!(f, "{}", parts.join("  ").trim_end())
        };
        line(f, &self.headers)?;
        writeln!(f, "{}", width.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "))?;
        for r in &self.rows {
            line(f, r)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_renders_text_and_escaped_html() {
        let mut t = Table::new("T", &["name", "acc"]);
        t.push(vec!["a<b".into(), "91.5".into()]);
        let text = t.to_string();
        assert!(text.contains("name  acc") && text.contains("a<b   91.5"), "{text}");
        let html = t.to_html();
        assert!(html.contains("a&lt;b") && html.contains("text-align:right\">91.5"));
        assert_eq!(t.to_markdown(), "### T\n\n| name | acc |\n| --- | --- |\n| a<b | 91.5 |\n\n");
    }
}

/// An SVG document that renders itself in a notebook: wrap the output of a plotters chart drawn
/// with `SVGBackend::with_string` (see [`crate::plot::svg_chart`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Svg(pub String);

impl Svg {
    pub fn evcxr_display(&self) {
        evcxr_emit("image/svg+xml", &self.0);
    }
    /// Writes the SVG atomically.
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> crate::error::Result<()> {
        crate::fsio::write_atomic(path.as_ref(), self.0.as_bytes())
    }
}
