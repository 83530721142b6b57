//! What the examples share: flag parsing, choosing the optimizer by name, and plotting curves.
#![allow(dead_code)] // each example uses a different subset

use std::collections::HashMap;
use std::path::Path;

use plotters::prelude::*;
use steepest::{Adagrad, Adam, AdamW, OptimizerConfig, RmsProp, Sgd};

/// `--key value` flags, checked against the names an example accepts.
pub struct Flags(HashMap<String, String>);

impl Flags {
    /// Parses the process arguments; `known` lists the accepted flags (without `--`), and
    /// `switches` those that take no value.
    pub fn parse(known: &[&str], switches: &[&str]) -> Result<Self, String> {
        let mut map = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let name = arg
                .strip_prefix("--")
                .filter(|n| known.contains(n) || switches.contains(n))
                .ok_or_else(|| {
                    let all: Vec<String> = known
                        .iter()
                        .chain(switches)
                        .map(|k| format!("--{k}"))
                        .collect();
                    format!("unknown argument {arg:?}; flags: {}", all.join(", "))
                })?;
            let value = if switches.contains(&name) {
                "true".to_string()
            } else {
                it.next().ok_or(format!("--{name} needs a value"))?
            };
            map.insert(name.to_string(), value);
        }
        Ok(Self(map))
    }

    /// The flag's value parsed, or `default`.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.0.get(name) {
            Some(v) => v.parse().map_err(|e| format!("--{name} {v:?}: {e}")),
            None => Ok(default),
        }
    }

    /// Whether a switch was given.
    pub fn on(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// The optimizers the examples offer, by name.
pub const OPTIMIZERS: [&str; 7] = [
    "sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "adagrad",
];

/// The optimizer called `name` with learning rate `lr`.
pub fn optimizer(name: &str, lr: f64) -> Result<OptimizerConfig, String> {
    Ok(match name {
        "sgd" => Sgd::default().lr(lr).into(),
        "momentum" => Sgd::default().lr(lr).momentum(0.9).into(),
        "nesterov" => Sgd::default().lr(lr).momentum(0.9).nesterov(true).into(),
        "rmsprop" => RmsProp::default().lr(lr).into(),
        "adam" => Adam::default().lr(lr).into(),
        "adamw" => AdamW::default().lr(lr).into(),
        "adagrad" => Adagrad::default().lr(lr).into(),
        other => {
            return Err(format!(
                "unknown optimizer {other:?}; one of {OPTIMIZERS:?}"
            ));
        }
    })
}

/// Draws `series` (name, points) as lines in an SVG at `path`, the y axis logarithmic.
pub fn plot(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let points = || {
        series
            .iter()
            .flat_map(|(_, p)| p.iter())
            .filter(|(_, y)| y.is_finite() && *y > 0.0)
    };
    let x_max = points().map(|p| p.0).fold(1.0, f64::max);
    let y_min = points().map(|p| p.1).fold(f64::INFINITY, f64::min).min(1.0);
    let y_max = points().map(|p| p.1).fold(0.0, f64::max).max(y_min * 10.0);
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("loss")
            .draw()?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    pts.iter()
                        .copied()
                        .filter(|(_, y)| y.is_finite() && *y > 0.0),
                    color.stroke_width(2),
                ))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| format!("plotting {}: {e}", path.display()))
}
