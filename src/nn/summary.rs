//! A model printed as a table of its layers (`println!("{model}")`), as PyTorch prints a module.

use std::fmt;

use super::{Mlp, Model, Sequential};
use crate::backend::Backend;

/// Elements in `specs`.
fn elements(specs: &[super::ParamSpec]) -> usize {
    specs.iter().map(|p| p.rows * p.cols).sum()
}

/// One line for the model (inputs, outputs, parameters, buffers, standardisation), then a row
/// per layer: its index (its tensors' name prefix), description, output width, parameters
/// and, where it keeps any, buffer values.
impl<B: Backend> fmt::Display for Sequential<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buffers: usize = self.layers.iter().map(|l| elements(&l.buffers())).sum();
        write!(
            f,
            "Sequential: {} inputs → {} outputs, {} parameters",
            self.inputs(),
            self.outputs(),
            self.parameter_count()
        )?;
        if buffers > 0 {
            write!(f, " and {buffers} buffer values")?;
        }
        if self.standardizer.is_some() {
            write!(f, "; inputs standardised")?;
        }
        let described: Vec<String> = self.layers.iter().map(|l| l.describe()).collect();
        let width = described
            .iter()
            .map(|d| d.chars().count())
            .max()
            .unwrap_or(0);
        write!(f, "\n  #  {:width$}  outputs  parameters", "layer")?;
        for (i, (layer, text)) in self.layers.iter().zip(&described).enumerate() {
            let pad = width - text.chars().count();
            let (params, kept) = (elements(&layer.parameters()), elements(&layer.buffers()));
            write!(
                f,
                "\n{i:>3}  {text}{:pad$}  {:>7}  {params:>10}",
                "",
                layer.outputs()
            )?;
            if kept > 0 {
                write!(f, " (+{kept} buffer values)")?;
            }
        }
        Ok(())
    }
}

/// The MLP's network, as a [`Sequential`] prints.
impl<B: Backend> fmt::Display for Mlp<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.network(), f)
    }
}
