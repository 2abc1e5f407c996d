//! `results.svg`: two bar charts on log scales, requests per second above and p99 latency
//! below, one group per scenario (baseline first) and one bar per concurrency, each bar
//! labelled with its value. Drawn with plotters' SVG backend only (no font files needed).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::Row;

const COLOURS: [RGBColor; 5] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0x9c, 0x75, 0x5f),
];

/// One chart: its area, its title, and the figure it shows of a row.
type Panel<'a, 'b> = (
    &'a DrawingArea<SVGBackend<'b>, Shift>,
    &'static str,
    fn(&Row) -> f64,
);

fn short(scenario: &str) -> &str {
    match scenario {
        "verify-under-login-flood" => "verify+login flood",
        other => other,
    }
}

fn compact(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 1000.0 {
        format!("{:.1}k", value / 1000.0)
    } else if value >= 10.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Draws the chart of `rows` into `path`.
///
/// # Errors
/// plotters failed to draw or to write the file.
pub fn draw(rows: &[Row], path: &Path) -> Result<(), String> {
    let mut scenarios: Vec<&str> = Vec::new();
    let mut levels: Vec<usize> = Vec::new();
    for row in rows {
        if !scenarios.contains(&row.scenario.as_str()) {
            scenarios.push(&row.scenario);
        }
        if !levels.contains(&row.concurrency) {
            levels.push(row.concurrency);
        }
    }
    levels.sort_unstable();
    let width = (140 * scenarios.len().max(4) + 120) as u32;
    let root = SVGBackend::new(path, (width, 820)).into_drawing_area();
    let fail = |err: &dyn std::fmt::Display| format!("chart: {err}");
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let (top, bottom) = root.split_vertically(410);
    let panels: [Panel; 2] = [
        (&top, "throughput (requests/s, log scale)", |r| {
            r.requests_per_second
        }),
        (&bottom, "p99 latency (ms, log scale)", |r| r.p99_ms),
    ];
    for (area, title, value) in panels {
        let values: Vec<f64> = rows.iter().map(value).filter(|v| *v > 0.0).collect();
        let low = values.iter().copied().fold(f64::MAX, f64::min).min(1.0) / 2.0;
        let high = values.iter().copied().fold(0.0, f64::max).max(10.0) * 12.0;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..scenarios.len() as f64, (low..high).log_scale())
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(scenarios.len() + 1)
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&|v| compact(*v))
            .draw()
            .map_err(|e| fail(&e))?;
        let bar = 0.8 / levels.len().max(1) as f64;
        for (level_index, level) in levels.iter().enumerate() {
            let colour = COLOURS[level_index % COLOURS.len()];
            let bars: Vec<(f64, f64)> = rows
                .iter()
                .filter(|row| row.concurrency == *level && value(row) > 0.0)
                .filter_map(|row| {
                    let group = scenarios.iter().position(|s| *s == row.scenario)?;
                    Some((group as f64 + 0.1 + bar * level_index as f64, value(row)))
                })
                .collect();
            chart
                .draw_series(bars.iter().map(|(x, v)| {
                    Rectangle::new([(*x, low), (*x + bar * 0.92, *v)], colour.filled())
                }))
                .map_err(|e| fail(&e))?
                .label(format!("concurrency {level}"))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
            let label = TextStyle::from(("sans-serif", 10).into_font())
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            chart
                .draw_series(
                    bars.iter()
                        .map(|(x, v)| Text::new(compact(*v), (*x + bar * 0.46, *v), label.clone())),
                )
                .map_err(|e| fail(&e))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| fail(&e))?;
        let name_style =
            TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (group, scenario) in scenarios.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(group as f64 + 0.5, low));
            root.draw(&Text::new(
                short(scenario).to_string(),
                (x, y + 8),
                name_style.clone(),
            ))
            .map_err(|e| fail(&e))?;
        }
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
