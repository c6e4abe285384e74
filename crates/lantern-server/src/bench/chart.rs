//! Benchmark charts with plotters, each written as SVG and PNG.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::serve::Run;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn err(e: impl std::fmt::Display) -> String {
    format!("chart: {e}")
}

/// A chart that can be drawn on any plotters backend.
pub trait Chart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Draws `chart` into `DIR/NAME.svg` and `DIR/NAME.png`.
pub fn both(dir: &Path, name: &str, size: (u32, u32), chart: &impl Chart) -> Result<(), String> {
    let svg = dir.join(format!("{name}.svg"));
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        chart.draw(&root)?;
        root.present().map_err(err)?;
    }
    let png = dir.join(format!("{name}.png"));
    let root = BitMapBackend::new(&png, size).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    chart.draw(&root)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Per endpoint: aggregate tokens/s (left) and TTFT p50 (right) against concurrency.
pub fn serve_chart(dir: &Path, runs: &[Run]) -> Result<(), String> {
    fn panel<DB: DrawingBackend>(
        area: &DrawingArea<DB, Shift>,
        runs: &[Run],
        title: &str,
        value: fn(&Run) -> f64,
    ) -> Result<(), String> {
        let max_c = runs.iter().map(|r| r.concurrency).max().unwrap_or(1) as f64;
        let max_y = runs.iter().map(value).fold(0.0, f64::max) * 1.15 + 1e-9;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..max_c + 1.0, 0.0..max_y)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("concurrent requests")
            .draw()
            .map_err(err)?;
        let mut endpoints: Vec<(&str, &str)> = Vec::new();
        for r in runs {
            if !endpoints.contains(&(r.url.as_str(), r.model.as_str())) {
                endpoints.push((r.url.as_str(), r.model.as_str()));
            }
        }
        for (i, (url, model)) in endpoints.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let points: Vec<(f64, f64)> = runs
                .iter()
                .filter(|r| r.url == *url && r.model == *model)
                .map(|r| (r.concurrency as f64, value(r)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(format!("{url} ({model})"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 4, color.filled())),
                )
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(err)?;
        Ok(())
    }
    struct Serve<'a>(&'a [Run]);
    impl Chart for Serve<'_> {
        fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
            let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
            panel(&left, self.0, "Aggregate decode (tokens/s)", |r| {
                r.aggregate_tok_s
            })?;
            panel(&right, self.0, "Time to first token p50 (ms)", |r| {
                r.ttft_p50
            })
        }
    }
    both(dir, "chart", (1200, 480), &Serve(runs))
}
