//! What the examples share: the backend and optimizer choices of their command lines, one
//! error format, and plotting curves.
#![allow(dead_code)] // each example uses a different subset

use std::path::Path;
use std::process::ExitCode;

use plotters::prelude::*;
use steepest::{
    Adadelta, Adagrad, Adam, AdamW, Adamax, Asgd, Backend, CpuBackend, GpuBackend, NAdam,
    OptimizerConfig, RAdam, RmsProp, Rprop, Sgd,
};

/// Where an example runs (`--backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// The GPU if wgpu finds one; otherwise the CPU backend, saying so.
    Auto,
    /// The GPU; no adapter is an error.
    Gpu,
    /// The CPU reference backend.
    Cpu,
}

impl BackendChoice {
    /// The GPU backend when the choice asks for one and there is one (`Ok(None)`: use the
    /// CPU backend). With `gpu`, no adapter is an error; with `auto` the fallback is printed.
    pub fn open(self) -> Result<Option<GpuBackend>, String> {
        match self {
            BackendChoice::Cpu => Ok(None),
            BackendChoice::Gpu => GpuBackend::new().map(Some).map_err(|e| e.to_string()),
            BackendChoice::Auto => match GpuBackend::new() {
                Ok(gpu) => Ok(Some(gpu)),
                Err(e) => {
                    println!("no GPU ({e})\nfalling back to the CPU backend (--backend cpu)");
                    Ok(None)
                }
            },
        }
    }
}

/// Runs `on_gpu` with the GPU backend when `choice` opens one (printing the adapter), else
/// `on_cpu` with the CPU backend: the two calls of an example's job, generic over the
/// backend, that a closure cannot be.
pub fn on_backend<T>(
    choice: BackendChoice,
    on_gpu: impl FnOnce(&GpuBackend) -> Result<T, String>,
    on_cpu: impl FnOnce(&CpuBackend) -> Result<T, String>,
) -> Result<T, String> {
    match choice.open()? {
        Some(gpu) => {
            println!("backend: {}", gpu.describe());
            on_gpu(&gpu)
        }
        None => on_cpu(&CpuBackend),
    }
}

/// The optimizers the examples offer (`--optimizer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerChoice {
    /// Plain stochastic gradient descent.
    Sgd,
    /// SGD with momentum 0.9.
    Momentum,
    /// SGD with Nesterov momentum 0.9.
    Nesterov,
    /// Averaged SGD (λ 1e-4, α 0.75).
    Asgd,
    /// RMSprop (α 0.99).
    Rmsprop,
    /// Adam (β 0.9, 0.999).
    Adam,
    /// AdamW (weight decay 0.01).
    Adamw,
    /// Adagrad.
    Adagrad,
    /// Adadelta (ρ 0.9).
    Adadelta,
    /// Adamax (β 0.9, 0.999).
    Adamax,
    /// NAdam (β 0.9, 0.999, momentum decay 0.004).
    Nadam,
    /// RAdam (β 0.9, 0.999).
    Radam,
    /// Rprop (η 0.5, 1.2): for full batches.
    Rprop,
}

/// Every optimizer, in the order the comparison prints them.
pub const OPTIMIZERS: [OptimizerChoice; 13] = [
    OptimizerChoice::Sgd,
    OptimizerChoice::Momentum,
    OptimizerChoice::Nesterov,
    OptimizerChoice::Asgd,
    OptimizerChoice::Rmsprop,
    OptimizerChoice::Adam,
    OptimizerChoice::Adamw,
    OptimizerChoice::Adagrad,
    OptimizerChoice::Adadelta,
    OptimizerChoice::Adamax,
    OptimizerChoice::Nadam,
    OptimizerChoice::Radam,
    OptimizerChoice::Rprop,
];

impl OptimizerChoice {
    /// The configuration with learning rate `lr`.
    pub fn config(self, lr: f64) -> OptimizerConfig {
        match self {
            OptimizerChoice::Sgd => Sgd::default().lr(lr).into(),
            OptimizerChoice::Momentum => Sgd::default().lr(lr).momentum(0.9).into(),
            OptimizerChoice::Nesterov => Sgd::default().lr(lr).momentum(0.9).nesterov(true).into(),
            OptimizerChoice::Asgd => Asgd::default().lr(lr).into(),
            OptimizerChoice::Rmsprop => RmsProp::default().lr(lr).into(),
            OptimizerChoice::Adam => Adam::default().lr(lr).into(),
            OptimizerChoice::Adamw => AdamW::default().lr(lr).into(),
            OptimizerChoice::Adagrad => Adagrad::default().lr(lr).into(),
            OptimizerChoice::Adadelta => Adadelta::default().lr(lr).into(),
            OptimizerChoice::Adamax => Adamax::default().lr(lr).into(),
            OptimizerChoice::Nadam => NAdam::default().lr(lr).into(),
            OptimizerChoice::Radam => RAdam::default().lr(lr).into(),
            OptimizerChoice::Rprop => Rprop::default().lr(lr).into(),
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerChoice::Sgd => "sgd",
            OptimizerChoice::Momentum => "momentum",
            OptimizerChoice::Nesterov => "nesterov",
            OptimizerChoice::Asgd => "asgd",
            OptimizerChoice::Rmsprop => "rmsprop",
            OptimizerChoice::Adam => "adam",
            OptimizerChoice::Adamw => "adamw",
            OptimizerChoice::Adagrad => "adagrad",
            OptimizerChoice::Adadelta => "adadelta",
            OptimizerChoice::Adamax => "adamax",
            OptimizerChoice::Nadam => "nadam",
            OptimizerChoice::Radam => "radam",
            OptimizerChoice::Rprop => "rprop",
        }
    }
}

/// A learning rate from the command line: a number > 0.
pub fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) => Err(format!("{v} is not a learning rate (finite, > 0)")),
        Err(e) => Err(e.to_string()),
    }
}

/// With profiling on (`STEEPEST_PROFILE=1`), where the GPU's time went since the context
/// opened, op by op, largest first; without, nothing.
pub fn print_kernel_times(gpu: &GpuBackend) -> steepest::Result<()> {
    let ctx = gpu.context();
    if !ctx.options().profile {
        return Ok(());
    }
    let mut times = ctx.take_kernel_times()?;
    times.sort_by(|a, b| b.gpu_us.total_cmp(&a.gpu_us));
    let total: f64 = times.iter().map(|t| t.gpu_us).sum();
    println!("GPU time by op (STEEPEST_PROFILE; every submit waited for its timestamps):");
    for t in &times {
        println!(
            "  {:<28} {:>10.0} us  {:>5.1}%  {:>8} runs  {:>8.1} us/run",
            t.op,
            t.gpu_us,
            100.0 * t.gpu_us / total.max(f64::MIN_POSITIVE),
            t.runs,
            t.gpu_us / t.runs.max(1) as f64
        );
    }
    Ok(())
}

/// The one way the examples end: `error: …` on stderr and exit status 1 when `run` failed.
pub fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One panel of a figure: curves against a shared x axis (epochs or steps, integers).
pub struct Panel<'a> {
    /// The y axis' name, with its scale (e.g. `loss (log scale)`).
    pub y_label: &'a str,
    /// A logarithmic y axis (values ≤ 0 and non-finite ones are left out).
    pub log: bool,
    /// (name, points) per curve.
    pub series: &'a [(String, Vec<(f64, f64)>)],
}

/// A tick label for `v`: plain decimals from 0.01 to 10 000, otherwise `1e-7` style; never
/// more digits than the value needs.
pub fn tick_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (0.01..10_000.0).contains(&a) {
        let text = format!("{v:.4}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        return text.to_string();
    }
    let exponent = a.log10().floor() as i32;
    let mantissa = v / 10f64.powi(exponent);
    if (mantissa.abs() - 1.0).abs() < 1e-9 {
        format!("{}e{exponent}", if v < 0.0 { "-1" } else { "1" })
    } else {
        format!("{}e{exponent}", tick_label(mantissa))
    }
}

/// Draws a figure at `path` (SVG): the panels side by side, each with its curves, the legend
/// in a column to the right of the data, integer x ticks.
pub fn plot_panels(
    path: &Path,
    title: &str,
    x_label: &str,
    panels: &[Panel<'_>],
) -> Result<(), String> {
    const LEGEND_WIDTH: u32 = 170;
    let width = 560 * panels.len().max(1) as u32 + LEGEND_WIDTH;
    let root = SVGBackend::new(path, (width, 480)).into_drawing_area();
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 22))?;
        let (charts, legend) = root.split_horizontally(width - LEGEND_WIDTH);
        let areas = charts.split_evenly((1, panels.len().max(1)));
        let mut names: Vec<String> = Vec::new();
        for (panel, area) in panels.iter().zip(&areas) {
            let keep = |y: f64| y.is_finite() && (!panel.log || y > 0.0);
            let points = || {
                panel
                    .series
                    .iter()
                    .flat_map(|(_, p)| p.iter())
                    .filter(|p| keep(p.1))
            };
            let x_max = points().map(|p| p.0).fold(1.0, f64::max).ceil().max(1.0) as u64;
            let x_range = 0..x_max;
            let mut chart = ChartBuilder::on(area);
            chart.margin(12).x_label_area_size(44).y_label_area_size(72);
            let x_desc = x_label.to_string();
            let formatter = |v: &f64| tick_label(*v);
            let x_formatter = |v: &u64| v.to_string();
            if panel.log {
                let y_min = points().map(|p| p.1).fold(f64::INFINITY, f64::min).min(1.0);
                let y_max = points().map(|p| p.1).fold(0.0, f64::max).max(y_min * 10.0);
                let mut chart = chart.build_cartesian_2d(x_range, (y_min..y_max).log_scale())?;
                chart
                    .configure_mesh()
                    .x_desc(x_desc)
                    .y_desc(panel.y_label)
                    .x_labels(8)
                    .y_labels(12)
                    .x_label_formatter(&x_formatter)
                    .y_label_formatter(&formatter)
                    .draw()?;
                draw_curves(&mut chart, panel, &keep, &mut names)?;
            } else {
                let y_max = points().map(|p| p.1).fold(0.0, f64::max).max(1e-12);
                let y_min = points().map(|p| p.1).fold(y_max, f64::min).min(0.0);
                let mut chart = chart.build_cartesian_2d(x_range, y_min..y_max * 1.05)?;
                chart
                    .configure_mesh()
                    .x_desc(x_desc)
                    .y_desc(panel.y_label)
                    .x_labels(8)
                    .y_labels(10)
                    .x_label_formatter(&x_formatter)
                    .y_label_formatter(&formatter)
                    .draw()?;
                draw_curves(&mut chart, panel, &keep, &mut names)?;
            }
        }
        // The legend: one line per curve name, in the column right of the charts.
        for (i, name) in names.iter().enumerate() {
            let y = 60 + 26 * i as i32;
            let color = Palette99::pick(i).to_rgba();
            legend.draw(&PathElement::new(
                vec![(10, y), (40, y)],
                color.stroke_width(3),
            ))?;
            legend.draw(&Text::new(name.clone(), (48, y - 8), ("sans-serif", 16)))?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| format!("plotting {}: {e}", path.display()))
}

/// Draws a panel's curves, each name's color fixed by its first appearance in `names`.
fn draw_curves<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordu64, Y>>,
    panel: &Panel<'_>,
    keep: &dyn Fn(f64) -> bool,
    names: &mut Vec<String>,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    for (name, pts) in panel.series {
        let index = match names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                names.push(name.clone());
                names.len() - 1
            }
        };
        let color = Palette99::pick(index).to_rgba();
        chart.draw_series(LineSeries::new(
            pts.iter()
                .filter(|(_, y)| keep(*y))
                .map(|&(x, y)| (x.max(0.0).round() as u64, y)),
            color.stroke_width(2),
        ))?;
    }
    Ok(())
}

/// One log-scale panel of `series` against `x_label`, as most examples draw their losses.
pub fn plot(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    plot_panels(
        path,
        title,
        x_label,
        &[Panel {
            y_label: "loss (log scale)",
            log: true,
            series,
        }],
    )
}
