//! `Standardizer`: per-feature standardisation, fitted on one split and applied to others.

use ndarray::{Array1, Array2, ArrayView2, Axis};

use super::{Dataset, check_finite};
use crate::error::{Error, Result};

/// Per-feature standardisation `(x − mean) / std`, fitted on one split and applied to others,
/// so no statistic of the validation data leaks into training.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    mean: Array1<f32>,
    std: Array1<f32>,
}

/// `std` as a divisor in f32, or 1 where dividing by it would not give finite, meaningful
/// values: zero, subnormal in f32, or below the rounding of the mean (a spread the f32 values
/// cannot even represent), as scikit-learn's scaler does.
fn usable_std(std: f64, mean: f64) -> f32 {
    let floor = (f64::from(f32::MIN_POSITIVE)).max(10.0 * f64::from(f32::EPSILON) * mean.abs());
    if std.is_finite() && std > floor {
        std as f32
    } else {
        1.0
    }
}

impl Standardizer {
    /// Means and standard deviations of `data`'s features. A feature whose spread is too small
    /// to divide by in f32 (constant, or varying only in the last bits of its values) gets
    /// std 1, so it maps to (nearly) 0 instead of NaN or infinity.
    pub fn fit(data: &Dataset) -> Self {
        let x = data.x.mapv(f64::from);
        let mean = x
            .mean_axis(Axis(0))
            .unwrap_or_else(|| Array1::zeros(x.ncols()));
        let std = x.std_axis(Axis(0), 0.0);
        Self {
            mean: mean.mapv(|m| m as f32),
            std: std
                .iter()
                .zip(&mean)
                .map(|(&s, &m)| usable_std(s, m))
                .collect(),
        }
    }

    /// A standardiser from stored statistics (as [`Standardizer::mean`] and
    /// [`Standardizer::std`] give them): one mean and one standard deviation per feature, all
    /// finite, every std > 0.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self> {
        let op = "Standardizer::new";
        let bad = |detail: String| Err(Error::Data { op, detail });
        if mean.len() != std.len() || mean.is_empty() {
            return bad(format!(
                "{} means and {} standard deviations: one of each per feature, at least one",
                mean.len(),
                std.len()
            ));
        }
        if let Some((i, m)) = mean.iter().enumerate().find(|(_, m)| !m.is_finite()) {
            return bad(format!("mean[{i}] = {m} is not finite"));
        }
        if let Some((i, s)) = std
            .iter()
            .enumerate()
            .find(|(_, s)| !(s.is_finite() && **s >= f32::MIN_POSITIVE))
        {
            return bad(format!("std[{i}] = {s}: a divisor must be finite and > 0"));
        }
        Ok(Self {
            mean: Array1::from(mean),
            std: Array1::from(std),
        })
    }

    /// `data` with its features standardised.
    pub fn transform(&self, data: &Dataset) -> Result<Dataset> {
        Ok(Dataset {
            x: self.transform_x(data.x.view())?,
            y: data.y.clone(),
            classes: data.classes,
        })
    }

    /// A feature matrix (samples × features) standardised, for inputs without targets (what
    /// a model is asked to predict).
    pub fn transform_x(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let op = "Standardizer::transform";
        if x.ncols() != self.mean.len() {
            return Err(Error::Data {
                op,
                detail: format!(
                    "fitted on {} features, given {}",
                    self.mean.len(),
                    x.ncols()
                ),
            });
        }
        check_finite(op, "x", x)?;
        // In f64, so a difference past f32's range cannot overflow before the division.
        let mut out = x.to_owned();
        for mut row in out.rows_mut() {
            for ((v, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = ((f64::from(*v) - f64::from(m)) / f64::from(s)) as f32;
            }
        }
        check_finite(op, "standardised x", out.view())?;
        Ok(out)
    }

    /// The fitted means.
    pub fn mean(&self) -> &Array1<f32> {
        &self.mean
    }

    /// The fitted standard deviations.
    pub fn std(&self) -> &Array1<f32> {
        &self.std
    }
}
