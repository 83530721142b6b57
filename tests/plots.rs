//! The examples' plots, read back from the SVG they write: tick labels a person can read
//! (never `0000001e-7`), integer epoch ticks, the scale named on the y axis, the legend in its
//! own column beside the data.

#[path = "../examples/common/mod.rs"]
mod common;

use common::{Panel, plot_panels, tick_label};

/// Every `<text …>content</text>` of an SVG as (x, content).
fn texts(svg: &str) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    for piece in svg.split("<text").skip(1) {
        let Some(close) = piece.find('>') else {
            continue;
        };
        let Some(end) = piece.find("</text>") else {
            continue;
        };
        let attributes = &piece[..close];
        let x = attributes
            .split("x=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN);
        out.push((x, piece[close + 1..end].trim().to_string()));
    }
    out
}

#[test]
fn tick_labels_say_the_value_in_the_fewest_characters() {
    for (value, label) in [
        (1e-7, "1e-7"),
        (2.5e-5, "2.5e-5"),
        (0.01, "0.01"),
        (0.5, "0.5"),
        (1.0, "1"),
        (100.0, "100"),
        (20_000.0, "2e4"),
        (0.0, "0"),
        (-0.25, "-0.25"),
    ] {
        assert_eq!(tick_label(value), label, "{value}");
    }
}

#[test]
fn a_loss_and_accuracy_figure_reads_well() {
    let dir = std::env::temp_dir().join(format!("steepest-plots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("figure.svg");
    let epochs = 30;
    let loss = |scale: f64| -> Vec<(f64, f64)> {
        (1..=epochs)
            .map(|e| {
                (
                    e as f64,
                    scale * 10f64.powf(-7.0 * e as f64 / epochs as f64),
                )
            })
            .collect()
    };
    let losses = [
        ("training".to_string(), loss(1.0)),
        ("validation".to_string(), loss(2.0)),
    ];
    let accuracy: Vec<(f64, f64)> = (1..=epochs)
        .map(|e| (e as f64, 50.0 + 50.0 * e as f64 / epochs as f64))
        .collect();
    let accuracies = [
        ("training".to_string(), accuracy.clone()),
        ("validation".to_string(), accuracy),
    ];
    plot_panels(
        &path,
        "a figure",
        "epoch",
        &[
            Panel {
                y_label: "loss (log scale)",
                log: true,
                series: &losses,
            },
            Panel {
                y_label: "accuracy, % (linear scale)",
                log: false,
                series: &accuracies,
            },
        ],
    )
    .unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    let texts = texts(&svg);
    let words: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
    for needed in [
        "a figure",
        "loss (log scale)",
        "accuracy, % (linear scale)",
        "epoch",
    ] {
        assert!(words.contains(&needed), "{needed:?} missing from {words:?}");
    }
    // Numbers: readable (no run of zeros a truncated exponent leaves), and enough of them.
    let numbers: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| w.parse::<f64>().is_ok())
        .collect();
    assert!(numbers.len() >= 20, "too few tick labels: {numbers:?}");
    for n in &numbers {
        assert!(!n.contains("0000"), "unreadable tick label {n:?}");
        assert!(n.len() <= 6, "tick label {n:?} is too long");
    }
    // The log axis reaches down to 1e-7 and names its decades.
    assert!(numbers.iter().any(|n| n.ends_with("e-7")), "{numbers:?}");
    // Epoch ticks are whole numbers: every non-scientific label below 31 that is not a
    // percentage or a loss is an integer.
    let epoch_ticks: Vec<f64> = numbers
        .iter()
        .filter_map(|n| n.parse::<f64>().ok())
        .filter(|v| *v >= 1.0 && *v <= epochs as f64)
        .collect();
    assert!(!epoch_ticks.is_empty());
    assert!(
        epoch_ticks.iter().all(|v| v.fract() == 0.0),
        "{epoch_ticks:?}"
    );
    // The legend: each name once, right of both charts.
    let chart_right = 2.0 * 560.0;
    for name in ["training", "validation"] {
        let places: Vec<f64> = texts
            .iter()
            .filter(|(_, t)| t == name)
            .map(|(x, _)| *x)
            .collect();
        assert_eq!(places.len(), 1, "{name}: {places:?}");
        assert!(
            places[0] >= chart_right,
            "{name} at x = {} overlaps the data",
            places[0]
        );
    }
}
