//! `Embedding`: a category index, one column of the input, replaced by a learned vector.

use ndarray::{Array2, ArrayView2};
use rand::rngs::StdRng;

use super::layer::{Backward, Forward, Layer, ParamSpec};
use super::{Init, standard_normal, wrong_tensors};
use crate::backend::{Backend, MAX_EMBEDDING_VOCAB, embedding_index};
use crate::error::{Error, Result};

/// A learned vector per category (PyTorch's `nn.Embedding(vocab, dim)`), for a categorical
/// feature held in one column of the input as its index (0, 1, …, vocab − 1, stored as
/// `f32`): the output is the input's other columns, in order, followed by the index's row of
/// the table, so numeric and categorical features share one input matrix. PyTorch's
/// equivalent is `torch.cat([x[:, others], embedding(x[:, column].long())], 1)`.
///
/// The table is the parameter `weight` (vocab × dim), drawn from N(0, 1) as PyTorch's is,
/// whatever the model's [`Init`]; a [`padding_idx`](Embedding::padding_idx) row starts at
/// zeros and never trains. Several categorical columns take an embedding each, in a
/// chain: each passes the others' columns on (its index column gone, so the next one's
/// column counts without it), and each checks its data ([`Layer::check_data`]): an index that
/// is not an integer in [0, vocab) is an error naming the row and the layer, before anything
/// runs (batches given on the device are not checked: there such an index gives a row of
/// NaN). Keep the index columns out of standardisation (mean 0 and deviation 1 in a
/// [`Standardizer`](crate::Standardizer)), or the indices are no longer indices.
///
/// ```
/// use steepest::nn::{Embedding, Layer};
/// use steepest::CpuBackend;
/// // Three features, the middle one a category of 10: out come the two numeric ones and 4
/// // learned values.
/// let layer = Embedding::new(10, 4).column(1, 3);
/// assert_eq!(Layer::<CpuBackend>::outputs(&layer), 6);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedding {
    /// Categories: rows of the table (at most 2²⁴, so every index is exact in `f32`).
    pub vocab: usize,
    /// Width of each category's vector.
    pub dim: usize,
    /// Columns of the input, the index among them.
    pub inputs: usize,
    /// The column holding the index.
    pub column: usize,
    /// A row that starts at zeros and gets no gradient (PyTorch's `padding_idx`: a category
    /// such as "missing" that should contribute nothing), if any.
    pub padding_idx: Option<usize>,
}

impl Embedding {
    /// A table of `vocab` vectors of `dim` values, for an input of one column: the index.
    pub fn new(vocab: usize, dim: usize) -> Self {
        Self {
            vocab,
            dim,
            inputs: 1,
            column: 0,
            padding_idx: None,
        }
    }

    /// Row `index` starts at zeros and gets no gradient (PyTorch's `padding_idx`).
    pub fn padding_idx(self, index: usize) -> Self {
        Self {
            padding_idx: Some(index),
            ..self
        }
    }

    /// The index is column `column` of an input of `inputs` columns.
    pub fn column(self, column: usize, inputs: usize) -> Self {
        Self {
            column,
            inputs,
            ..self
        }
    }
}

impl<B: Backend> Layer<B> for Embedding {
    fn describe(&self) -> String {
        let padding = self
            .padding_idx
            .map_or(String::new(), |p| format!(", padding {p}"));
        format!(
            "embedding({}×{}, column {} of {}{padding})",
            self.vocab, self.dim, self.column, self.inputs
        )
    }

    fn validate(&self) -> Result<()> {
        let bad = |detail: String| {
            Err(Error::Shape {
                op: "Embedding::new",
                detail,
            })
        };
        if !(1..=MAX_EMBEDDING_VOCAB).contains(&self.vocab) || self.dim == 0 {
            return bad(format!(
                "a table of {}×{}: it needs 1 to {MAX_EMBEDDING_VOCAB} rows (indices exact in \
                 f32) and at least one column",
                self.vocab, self.dim
            ));
        }
        if let Some(p) = self.padding_idx.filter(|&p| p >= self.vocab) {
            return bad(format!(
                "padding_idx {p}: the table has rows 0 to {}",
                self.vocab - 1
            ));
        }
        if self.column >= self.inputs || self.inputs.checked_add(self.dim).is_none() {
            return bad(format!(
                "the index is column {} of {}: it must be one of the input's columns",
                self.column, self.inputs
            ));
        }
        Ok(())
    }

    fn inputs(&self) -> usize {
        self.inputs
    }

    fn outputs(&self) -> usize {
        (self.inputs.saturating_sub(1)).saturating_add(self.dim)
    }

    fn check_data(&self, op: &'static str, x: ArrayView2<'_, f32>) -> Result<()> {
        let Some(indices) = (self.column < x.ncols()).then(|| x.column(self.column)) else {
            return Ok(()); // the feature count is checked, and named, by the model
        };
        match indices
            .iter()
            .position(|&v| embedding_index(v, self.vocab).is_none())
        {
            None => Ok(()),
            Some(r) => Err(Error::Data {
                op,
                detail: format!(
                    "row {r}: {} reads {} in its index column, which names no row of its {} \
                     (an index must be an integer in [0, {}))",
                    Layer::<B>::describe(self),
                    indices[r],
                    self.vocab,
                    self.vocab
                ),
            }),
        }
    }

    /// The other columns in their output places, NaN in the embedding's.
    fn data_after(&self, x: ArrayView2<'_, f32>) -> Option<Array2<f32>> {
        let outputs = Layer::<B>::outputs(self);
        let mut out = Array2::from_elem((x.nrows(), outputs), f32::NAN);
        for (c, column) in x.columns().into_iter().enumerate() {
            match c.cmp(&self.column) {
                std::cmp::Ordering::Less => out.column_mut(c).assign(&column),
                std::cmp::Ordering::Greater => out.column_mut(c - 1).assign(&column),
                std::cmp::Ordering::Equal => {}
            }
        }
        Some(out)
    }

    fn parameters(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::matrix("weight", self.vocab, self.dim)]
    }

    /// N(0, 1), as `nn.Embedding` draws its weight, and the padding row then zeroed.
    fn initial_values(&self, _init: Init, rng: &mut StdRng) -> Vec<f32> {
        let count = self.vocab.saturating_mul(self.dim);
        let mut values: Vec<f32> = (0..count).map(|_| standard_normal(rng) as f32).collect();
        let start = self.padding_idx.and_then(|p| p.checked_mul(self.dim));
        let row = start.and_then(|s| values.get_mut(s..s.checked_add(self.dim)?));
        if let Some(row) = row {
            row.fill(0.0);
        }
        values
    }

    fn forward(&self, backend: &B, pass: Forward<'_, B>) -> Result<()> {
        let [table] = pass.params else {
            return Err(wrong_tensors(
                "Embedding::forward",
                (pass.params.len(), 1),
                (pass.saved.len(), 0),
            ));
        };
        backend.embedding_into(pass.input, self.column, table, pass.output)
    }

    fn backward(&self, backend: &B, pass: Backward<'_, B>) -> Result<()> {
        let given = (
            pass.grad_params.len().min(pass.trained.len()),
            pass.saved.len(),
        );
        let ([table_grad], [trained]) = (pass.grad_params, pass.trained) else {
            return Err(wrong_tensors(
                "Embedding::backward",
                (given.0, 1),
                (given.1, 0),
            ));
        };
        let mut below = pass.grad_input;
        let table_grad = trained.then_some(table_grad);
        let grad_in = below.as_mut().map(|b| &mut *b.grad);
        if table_grad.is_none() && grad_in.is_none() {
            return Ok(());
        }
        backend.embedding_backward(
            pass.input,
            (self.column, self.padding_idx),
            pass.grad_output,
            table_grad,
            grad_in,
        )?;
        match &mut below {
            Some(below) => below.apply_activation(backend),
            None => Ok(()),
        }
    }
}
