//! Datasets: features and targets as ndarray, checked once; splits, standardisation and seeded
//! synthetic generators.

mod standardizer;
mod synthetic;

pub use standardizer::Standardizer;
pub use synthetic::{blobs, linear, moons, spirals};

use ndarray::{Array2, ArrayView2, Axis};
use rand::RngExt;

use crate::error::{Error, Result};
use crate::nn::seeded;

/// Features and targets for training or evaluation, checked when built: no NaN or infinity,
/// one target row per sample, class labels in range.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    x: Array2<f32>,
    /// Regression targets (n × outputs), or one class index per row (n × 1) as `f32`.
    y: Array2<f32>,
    classes: Option<usize>,
}

/// Fails with [`Error::Data`] naming the first non-finite element of `m`.
pub(crate) fn check_finite(op: &'static str, what: &str, m: ArrayView2<'_, f32>) -> Result<()> {
    match m.indexed_iter().find(|(_, v)| !v.is_finite()) {
        Some(((r, c), v)) => Err(Error::Data {
            op,
            detail: format!("{what}[{r}, {c}] is {v}: every value must be finite"),
        }),
        None => Ok(()),
    }
}

impl Dataset {
    /// A regression dataset: `x` is samples × features, `y` samples × outputs.
    pub fn regression(x: Array2<f32>, y: Array2<f32>) -> Result<Self> {
        let op = "Dataset::regression";
        Self::check_rows(op, &x, y.nrows())?;
        check_finite(op, "x", x.view())?;
        check_finite(op, "y", y.view())?;
        if y.ncols() == 0 {
            return Err(Error::Data {
                op,
                detail: "targets have no columns".into(),
            });
        }
        Ok(Self {
            x,
            y,
            classes: None,
        })
    }

    /// A classification dataset: `x` is samples × features, `labels` one class in
    /// `0..classes` per sample.
    pub fn classification(x: Array2<f32>, labels: &[usize], classes: usize) -> Result<Self> {
        let op = "Dataset::classification";
        Self::check_rows(op, &x, labels.len())?;
        check_finite(op, "x", x.view())?;
        if classes < 2 {
            return Err(Error::Data {
                op,
                detail: format!("{classes} classes: a classifier needs at least 2"),
            });
        }
        if let Some((row, &label)) = labels.iter().enumerate().find(|(_, l)| **l >= classes) {
            return Err(Error::Label {
                row,
                label: label as f32,
                classes,
            });
        }
        if classes > 1 << 24 {
            return Err(Error::Data {
                op,
                detail: format!("{classes} classes: labels are stored exactly only below 2^24"),
            });
        }
        let y = Array2::from_shape_fn((labels.len(), 1), |(r, _)| labels[r] as f32);
        Ok(Self {
            x,
            y,
            classes: Some(classes),
        })
    }

    fn check_rows(op: &'static str, x: &Array2<f32>, targets: usize) -> Result<()> {
        if x.nrows() == 0 || x.ncols() == 0 {
            return Err(Error::Data {
                op,
                detail: format!(
                    "the dataset is empty ({}×{} features)",
                    x.nrows(),
                    x.ncols()
                ),
            });
        }
        if x.nrows() != targets {
            return Err(Error::Data {
                op,
                detail: format!("{} samples but {targets} targets", x.nrows()),
            });
        }
        Ok(())
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.x.nrows()
    }

    /// Always `false`: a dataset is never empty.
    pub fn is_empty(&self) -> bool {
        self.x.nrows() == 0
    }

    /// Features per sample.
    pub fn features(&self) -> usize {
        self.x.ncols()
    }

    /// The features (samples × features).
    pub fn x(&self) -> &Array2<f32> {
        &self.x
    }

    /// The targets: samples × outputs for regression, samples × 1 class indices (as `f32`) for
    /// classification.
    pub fn y(&self) -> &Array2<f32> {
        &self.y
    }

    /// Number of classes, for a classification dataset.
    pub fn classes(&self) -> Option<usize> {
        self.classes
    }

    /// The class labels, for a classification dataset.
    pub fn labels(&self) -> Option<Vec<usize>> {
        self.classes?;
        Some(self.y.column(0).iter().map(|&l| l as usize).collect())
    }

    /// The samples at `rows`, in that order (repeats allowed). Fails on an empty list or a
    /// row past the end, changing nothing.
    pub fn select(&self, rows: &[usize]) -> Result<Self> {
        let op = "Dataset::select";
        if rows.is_empty() {
            return Err(Error::Data {
                op,
                detail: "no rows selected: a dataset holds at least one sample".into(),
            });
        }
        if let Some((i, &row)) = rows.iter().enumerate().find(|(_, r)| **r >= self.len()) {
            return Err(Error::Data {
                op,
                detail: format!(
                    "rows[{i}] = {row} is past the last of the {} samples",
                    self.len()
                ),
            });
        }
        Ok(Self {
            x: self.x.select(Axis(0), rows),
            y: self.y.select(Axis(0), rows),
            classes: self.classes,
        })
    }

    /// A seeded shuffle split: `(train, validation)` with `round(fraction · n)` validation
    /// samples. Both parts must end up non-empty.
    pub fn split(&self, validation_fraction: f64, seed: u64) -> Result<(Self, Self)> {
        let n = self.len();
        let n_val = (validation_fraction * n as f64).round() as usize;
        if !(0.0..1.0).contains(&validation_fraction) || n_val == 0 || n_val >= n {
            return Err(Error::Data {
                op: "Dataset::split",
                detail: format!(
                    "a validation fraction of {validation_fraction} of {n} samples leaves an \
                     empty part"
                ),
            });
        }
        let order = shuffled(n, &mut seeded(seed));
        let (val, train) = order.split_at(n_val);
        Ok((self.select(train)?, self.select(val)?))
    }
}

impl Dataset {
    /// Class weights that make every class count as much in total (scikit-learn's
    /// `compute_class_weight("balanced")`): class c's weight is n / (classes · n_c), n_c its
    /// samples, for [`Trainer::class_weights`](crate::Trainer::class_weights). A class with no
    /// sample gets 0 (it has nothing to weigh). For classification data only
    /// ([`Dataset::classification`]); compute them on the training split.
    ///
    /// ```
    /// use steepest::{Adam, Dataset, Loss, Trainer, ndarray::Array2};
    /// # fn main() -> steepest::Result<()> {
    /// // Nine samples of class 0, three of class 1: class 1 counts three times as much.
    /// let labels = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1];
    /// let x = Array2::from_shape_fn((12, 2), |(i, j)| (i + j) as f32);
    /// let data = Dataset::classification(x, &labels, 2)?;
    /// let weights = data.balanced_class_weights()?;
    /// assert!((weights[0] - 2.0 / 3.0).abs() < 1e-7 && weights[1] == 2.0); // 12/(2·9), 12/(2·3)
    /// let trainer = Trainer::new(Adam::default(), Loss::SoftmaxCrossEntropy);
    /// let trainer = trainer.class_weights(weights);
    /// # let _ = trainer;
    /// # Ok(())
    /// # }
    /// ```
    pub fn balanced_class_weights(&self) -> Result<Vec<f32>> {
        let (Some(labels), Some(classes)) = (self.labels(), self.classes) else {
            return Err(Error::Data {
                op: "Dataset::balanced_class_weights",
                detail: "the data has no class labels (build it with Dataset::classification)"
                    .into(),
            });
        };
        let mut counts = vec![0usize; classes];
        for label in labels {
            counts[label] += 1;
        }
        let n = self.len() as f64;
        Ok(counts
            .iter()
            .map(|&count| match count {
                0 => 0.0,
                _ => (n / (classes as f64 * count as f64)) as f32,
            })
            .collect())
    }

    /// A seeded shuffle split that keeps each class's share (scikit-learn's
    /// `train_test_split(stratify=y)`): `round(fraction · n)` validation samples, as
    /// [`Dataset::split`] takes, drawn from each class in proportion to its size (its
    /// `fraction` of the class rounded down, the samples left over going to the classes with
    /// the largest remainders, the lower class first on a tie), so that a rare class is not
    /// left out of either part by chance. Both parts come shuffled. For classification data
    /// only ([`Dataset::classification`]); both parts must end up non-empty.
    ///
    /// ```
    /// use steepest::{Dataset, ndarray::Array2};
    /// # fn main() -> steepest::Result<()> {
    /// // 95 samples of class 0 and 5 of class 1: a fifth held out keeps one of class 1.
    /// let labels: Vec<usize> = (0..100).map(|i| usize::from(i >= 95)).collect();
    /// let x = Array2::from_shape_fn((100, 1), |(i, _)| i as f32);
    /// let (train, val) = Dataset::classification(x, &labels, 2)?.split_stratified(0.2, 7)?;
    /// assert_eq!((train.len(), val.len()), (80, 20));
    /// let rare = val.labels().map_or(0, |labels| labels.iter().filter(|&&l| l == 1).count());
    /// assert_eq!(rare, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn split_stratified(&self, validation_fraction: f64, seed: u64) -> Result<(Self, Self)> {
        let op = "Dataset::split_stratified";
        let Some(labels) = self.labels() else {
            return Err(Error::Data {
                op,
                detail: "the data has no class labels (build it with Dataset::classification) \
                         to stratify by; Dataset::split splits any data"
                    .into(),
            });
        };
        let n = self.len();
        let n_val = (validation_fraction * n as f64).round() as usize;
        if !(0.0..1.0).contains(&validation_fraction) || n_val == 0 || n_val >= n {
            return Err(Error::Data {
                op,
                detail: format!(
                    "a validation fraction of {validation_fraction} of {n} samples leaves an \
                     empty part"
                ),
            });
        }
        let rng = &mut seeded(seed);
        // Each class's rows, in a seeded order.
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); self.classes.unwrap_or(0)];
        for row in shuffled(n, rng) {
            by_class[labels[row]].push(row);
        }
        // Largest remainders: every class its share rounded down, then one more each for the
        // classes whose share lost the most, until the counts add up to n_val.
        let share = |rows: usize| validation_fraction * rows as f64;
        let mut counts: Vec<usize> = by_class.iter().map(|c| share(c.len()) as usize).collect();
        let mut order: Vec<usize> = (0..by_class.len()).collect();
        let remainder = |c: usize| share(by_class[c].len()) - counts[c] as f64;
        order.sort_by(|&a, &b| remainder(b).total_cmp(&remainder(a)).then(a.cmp(&b)));
        let mut missing = n_val.saturating_sub(counts.iter().sum());
        for c in order {
            if missing > 0 && counts[c] < by_class[c].len() {
                counts[c] += 1;
                missing -= 1;
            }
        }
        let (mut train, mut val) = (Vec::with_capacity(n - n_val), Vec::with_capacity(n_val));
        for (rows, &count) in by_class.iter().zip(&counts) {
            val.extend_from_slice(&rows[..count]);
            train.extend_from_slice(&rows[count..]);
        }
        // Class by class no longer: each part in a seeded order of its own.
        let (train_order, val_order) = (shuffled(train.len(), rng), shuffled(val.len(), rng));
        let train: Vec<usize> = train_order.iter().map(|&i| train[i]).collect();
        let val: Vec<usize> = val_order.iter().map(|&i| val[i]).collect();
        Ok((self.select(&train)?, self.select(&val)?))
    }
}

/// `0..n` in a seeded random order (Fisher–Yates).
pub(crate) fn shuffled(n: usize, rng: &mut rand::rngs::StdRng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    order
}
