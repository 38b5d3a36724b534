//! Text in figures never depends on the machine's fonts. This file holds one test on purpose: its
//! process draws an SVG (with a panel caption, whose size plotters measures) before any PNG,
//! with fontconfig pointed at an empty configuration, so nothing but the bundled font can serve
//! the text. The report's first figure once came out as the text "FontUnavailable": the font
//! was registered only on the PNG path. Needs the `png` feature (the CLI's), which `cargo test
//! --workspace` enables.

use doublewin::prelude::*;

#[test]
fn an_svg_drawn_first_in_a_process_without_system_fonts_has_its_text() {
    let empty = std::env::temp_dir().join(format!("doublewin-empty-fonts-{}.conf", std::process::id()));
    std::fs::write(&empty, "<?xml version=\"1.0\"?>\n<fontconfig></fontconfig>\n").unwrap();
    std::env::set_var("FONTCONFIG_FILE", &empty);
    use doublewin::plot::{Layer, Panel};
    let panel = Panel::new("AT source, m^ST tickets", "sparsity %", "SA %")
        .with(Layer::line(Series::new("AT ticket", vec![(0.0, 90.0), (59.0, 88.0)]), doublewin::plot::palette(0)))
        .with(Layer::dashed(Series::new("one-shot", vec![(59.0, 86.0)]), doublewin::plot::palette(1)));
    let fig = Figure::grid("Sparsity and accuracy", vec![panel], 1).unwrap();
    let svg = fig.try_svg().expect("drawing with the bundled font");
    let _ = std::fs::remove_file(&empty);
    assert!(!svg.contains("failed") && !svg.contains("FontUnavailable"), "{svg}");
    assert!(svg.contains("Sparsity and accuracy") && svg.contains("sparsity %"), "the title and axis label are drawn as text");
    // Two markers on the line; the dashed one-point series ("one-shot") draws no line, so it gets
    // a marker of its own.
    assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
    // The figure saved as a file is the same drawing, never an error message written as a figure.
    let path = std::env::temp_dir().join(format!("doublewin-fonts-{}.svg", std::process::id()));
    fig.save_svg(&path).unwrap();
    let saved = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(saved, svg);
}
