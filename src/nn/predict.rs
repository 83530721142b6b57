//! Prediction on host data: `predict` and `predict_classes` on any model, in batches so that a
//! large input never needs all its activations on the device at once.

use ndarray::{Array2, ArrayView2, Axis, concatenate};

use super::Sequential;
use crate::backend::Backend;
use crate::error::{Error, Result};

/// Activations one batch of a prediction may hold per layer: 16 Mi values (64 MiB of f32).
const VALUES_PER_BATCH: usize = 1 << 24;

impl<B: Backend> Sequential<B> {
    /// The network's outputs for every row of `x` (samples × inputs), as a host array of
    /// samples × outputs: logits for a classifier trained with a cross-entropy loss. Inputs
    /// are standardised first when the model carries a [`Sequential::standardizer`]. Runs in batches
    /// sized so each layer's activations stay under 64 MiB.
    ///
    /// ```
    /// use ndarray::array;
    /// use steepest::{Activation, CpuBackend, Init, Mlp, MlpSpec};
    /// # fn main() -> steepest::Result<()> {
    /// let spec = MlpSpec::new(2).layer(8, Activation::Relu).layer(3, Activation::Identity);
    /// let model = Mlp::new(&CpuBackend, &spec, Init::default(), 1)?;
    /// let logits = model.predict(&CpuBackend, array![[0.5, -1.0], [2.0, 0.0]].view())?;
    /// assert_eq!(logits.dim(), (2, 3));
    /// let classes = model.predict_classes(&CpuBackend, array![[0.5, -1.0]].view())?;
    /// assert!(classes[0] < 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn predict(&self, backend: &B, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let op = "predict";
        let (rows, features) = x.dim();
        self.check_input(op, features)?;
        if rows == 0 {
            return Ok(Array2::zeros((0, self.outputs())));
        }
        if let Some((r, c)) = x
            .indexed_iter()
            .find(|(_, v)| !v.is_finite())
            .map(|(i, _)| i)
        {
            return Err(Error::Data {
                op,
                detail: format!("x[{r}, {c}] is {}: every input must be finite", x[[r, c]]),
            });
        }
        let standardised = match self.standardizer() {
            Some(s) => Some(s.transform_x(x)?),
            None => None,
        };
        let x = standardised.as_ref().map_or(x, |s| s.view());
        let widest = self
            .layers()
            .iter()
            .map(|l| l.outputs())
            .chain([features])
            .max()
            .unwrap_or(1)
            .max(1);
        let batch = (VALUES_PER_BATCH / widest).clamp(1, rows);
        let mut parts = Vec::with_capacity(rows.div_ceil(batch));
        for start in (0..rows).step_by(batch) {
            let chunk = x.slice(ndarray::s![start..(start + batch).min(rows), ..]);
            let input = backend.upload(chunk)?;
            let output = self.forward(backend, &input)?;
            parts.push(backend.download(&output)?);
        }
        let views: Vec<ArrayView2<'_, f32>> = parts.iter().map(|p| p.view()).collect();
        concatenate(Axis(0), &views).map_err(|e| Error::Shape {
            op,
            detail: e.to_string(),
        })
    }

    /// The predicted class of every row of `x`: the index of the largest output (the first
    /// of equals) for a network with several outputs, as softmax cross-entropy trains it; for
    /// one output, a logit as binary cross-entropy trains it, class 1 when it is above 0.
    pub fn predict_classes(&self, backend: &B, x: ArrayView2<'_, f32>) -> Result<Vec<usize>> {
        let outputs = self.predict(backend, x)?;
        Ok(outputs
            .rows()
            .into_iter()
            .map(|row| {
                if row.len() == 1 {
                    usize::from(row[0] > 0.0)
                } else {
                    row.iter()
                        .enumerate()
                        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                            if v > best.1 { (i, v) } else { best }
                        })
                        .0
                }
            })
            .collect())
    }
}
