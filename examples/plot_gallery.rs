//! Draws one figure of each kind into a folder (default `out/gallery`), as SVG and PNG, to check
//! how figures look: `cargo run --example plot_gallery -- out/gallery`.

use doublewin::plot::{contour_segments, palette, Figure, Layer, Panel, Series};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "out/gallery".into()));
    std::fs::create_dir_all(&out)?;
    let sparsity: [f64; 7] = [0.0, 20.0, 36.0, 48.8, 59.0, 67.2, 73.8];
    let curve = |base: f64, drop: f64| sparsity.iter().map(|s| (*s, base - drop * (s / 73.8).powi(2))).collect::<Vec<_>>();
    let mut panels = Vec::new();
    for (metric, base) in [("SA, standard FT", 91.0), ("SA, adversarial FT", 83.0), ("RA, adversarial FT", 55.0)] {
        let mut p = Panel::new(metric, "sparsity (%)", "accuracy (%)");
        for (i, name) in ["STD", "FAT", "AT"].iter().enumerate() {
            let b = base - 2.0 * i as f64;
            let pts = curve(b, 4.0 + i as f64);
            p.push(Layer::Band {
                name: String::new(),
                color: palette(i),
                points: pts.iter().map(|(x, y)| (*x, y - 0.8, y + 0.8)).collect(),
            });
            p.push(Layer::line(Series::new(format!("{name} ticket"), pts), palette(i)));
            p.push(Layer::HLine { name: format!("{name} dense"), y: b, color: palette(i) });
        }
        panels.push(p);
    }
    let fig = Figure::grid("Sparsity vs accuracy (digits, 100% data)", panels, 3)?.note("bands: min-max over seeds");
    fig.save(out.join("curves.svg"))?;
    fig.save(out.join("curves.png"))?;

    let bars = Figure::bars(
        "Density per layer",
        "density (%)",
        "m^ST round 6",
        vec!["features.0.weight".into(), "features.3.weight".into(), "classifier.1.weight".into()],
        vec![40.0, 22.5, 100.0],
    )?;
    bars.save(out.join("bars.png"))?;
    bars.save(out.join("bars.svg"))?;

    let xs: Vec<f64> = (0..31).map(|i| -1.0 + i as f64 / 15.0).collect();
    let z: Vec<Vec<f64>> = xs.iter().map(|y| xs.iter().map(|x| 0.3 + x * x + 2.0 * y * y + 0.3 * x * y).collect()).collect();
    let levels: Vec<f64> = (1..12).map(|i| 0.3 + i as f64 * 0.25).collect();
    let segments = levels.iter().map(|l| contour_segments(&xs, &xs, &z, *l)).collect();
    let traj = Series::new("trajectory", vec![(-0.9, 0.8), (-0.5, 0.4), (-0.2, 0.15), (0.0, 0.0)]);
    let panel = Panel::new("adversarial loss", "PC1 (71.2%)", "PC2 (18.4%)").with(Layer::Contours { levels, segments }).with(Layer::Line {
        series: traj,
        color: palette(3),
        dashed: false,
        markers: true,
        labels: vec!["1".into(), "2".into(), "3".into(), "4".into()],
    });
    let land = Figure::grid("Loss landscape", vec![panel.clone(), panel.clone(), panel], 3)?;
    land.save(out.join("landscape.png"))?;
    land.save(out.join("landscape.svg"))?;
    println!("wrote {}", out.display());
    Ok(())
}
