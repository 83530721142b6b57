//! Random training setups for the tests that run many of them (`lockstep_setups.rs`,
//! `resume_setups.rs`): a random stack of layers (an embedding of a categorical column,
//! linear layers with fused activations, layer, RMS and batch norms, nonlinearities, gated
//! linear units, dropout, residual blocks), a random loss, optimizer and hyperparameters, clipping, schedule,
//! parameter groups, moving averages, batch size, accumulation, order and steps per submit,
//! with data to match. The draws stay out of the numerically degenerate corners where the two
//! backends' roundings, both right, differ by a whole step (each rule says which).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use steepest::nn::{
    BatchNorm, Dropout, Elementwise, Embedding, Glu, Layer, LayerNorm, Residual, RmsNorm,
    Sequential,
};
use steepest::optim::{OneCycle, ParamGroup};
use steepest::{
    Activation, Adadelta, Adagrad, Adam, AdamW, Adamax, Asgd, Backend, BatchOrder, Clip, Dataset,
    Init, Linear, Loss, LrSchedule, NAdam, Nonlinearity, OptimizerConfig, RAdam, RmsProp, Rprop,
    Sgd, Swa, Trainer,
};

/// One layer of the stack, drawn once and built for each backend.
#[derive(Clone, Debug)]
pub enum Part {
    Linear(usize, Activation),
    LayerNorm,
    RmsNorm,
    BatchNorm,
    Nonlinearity(Nonlinearity),
    Dropout(f32, u64),
    /// A gated linear unit: half the features out.
    Glu,
    /// LayerNorm, a square linear layer and a nonlinearity, added to the block's input.
    Residual(Nonlinearity),
}

#[derive(Clone, Debug)]
pub struct Setup {
    pub inputs: usize,
    /// A categorical input column, looked up in a table ahead of the stack.
    pub embedding: Option<Embedding>,
    pub parts: Vec<Part>,
    pub outputs: usize,
    pub loss: Loss,
    pub rows: usize,
    pub data_seed: u64,
    pub trainer: Trainer,
}

fn pick<T: Clone>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())].clone()
}

/// A function whose derivative does not jump, for `f`: ReLU and its kin, ELU and SELU at 0,
/// the hard clamps replaced by smooth ones (`draw_smooth` says why).
fn smoothed(f: Nonlinearity) -> Nonlinearity {
    match f {
        Nonlinearity::Relu | Nonlinearity::Relu6 | Nonlinearity::LeakyRelu { .. } => {
            Nonlinearity::Silu
        }
        Nonlinearity::Elu { .. } | Nonlinearity::Selu => Nonlinearity::Celu { alpha: 0.6 },
        Nonlinearity::Hardswish | Nonlinearity::Hardtanh { .. } => Nonlinearity::Gelu,
        Nonlinearity::Hardsigmoid => Nonlinearity::Sigmoid,
        smooth => smooth,
    }
}

/// A fused activation for a linear layer: tanh for ReLU where `smooth`.
fn activation(rng: &mut StdRng, smooth: bool) -> Activation {
    match pick(rng, &Activation::ALL) {
        Activation::Relu if smooth => Activation::Tanh,
        other => other,
    }
}

fn nonlinearity(rng: &mut StdRng, smooth: bool) -> Nonlinearity {
    let f = pick(
        rng,
        &[
            Nonlinearity::Relu,
            Nonlinearity::LeakyRelu { slope: 0.1 },
            Nonlinearity::Gelu,
            Nonlinearity::GeluTanh,
            Nonlinearity::Silu,
            Nonlinearity::Tanh,
            Nonlinearity::Sigmoid,
            Nonlinearity::Elu { alpha: 0.7 },
            Nonlinearity::Selu,
            Nonlinearity::Mish,
            Nonlinearity::Hardswish,
            Nonlinearity::Relu6,
            Nonlinearity::Hardtanh {
                min_val: -1.5,
                max_val: 2.0,
            },
            Nonlinearity::Hardsigmoid,
            Nonlinearity::Softsign,
            Nonlinearity::LogSigmoid,
            Nonlinearity::Celu { alpha: 0.6 },
        ],
    );
    if smooth { smoothed(f) } else { f }
}

/// The features after `parts`.
fn width(inputs: usize, parts: &[Part]) -> usize {
    parts.iter().fold(inputs, |width, part| match part {
        Part::Linear(outputs, _) => *outputs,
        Part::Glu => width / 2,
        _ => width,
    })
}

/// Whether a batch norm may follow `last`: first only, on the data (not on an embedding's
/// output, whose columns take a value per category: all one in a small batch). After a layer with parameters, the batch norm takes out each feature's mean, so
/// the gradient of a shift that reaches it unbent (a bias, through a linear layer, a ReLU's
/// linear half, another norm or a residual sum) is zero but for rounding; and a feature that
/// barely varies over the batch (a bottleneck's sigmoid) has its rounding multiplied by up to
/// 1/√eps. Each backend rounds its own way, and the adaptive optimizers (Adam, Adagrad, Rprop,
/// ...) scale the difference up to a step. The batch norm's kernels have differential tests
/// of their own (`layer_kernels.rs`).
fn normalisable(last: Option<&Part>) -> bool {
    last.is_none()
}

/// An optimizer of a random kind with random settings in the ranges PyTorch accepts; with
/// `adaptive` false, one whose step is proportional to the gradient (SGD, ASGD).
fn optimizer(rng: &mut StdRng, adaptive: bool) -> OptimizerConfig {
    let lr = 10f64.powf(rng.random_range(-3.0..-1.0));
    let decay = if rng.random_bool(0.4) {
        rng.random_range(0.0..0.1)
    } else {
        0.0
    };
    let maximize = rng.random_bool(0.15);
    let beta1 = rng.random_range(0.5..0.95);
    let beta2 = rng.random_range(0.9..0.9999);
    let kind = if adaptive {
        rng.random_range(0..12)
    } else {
        pick(rng, &[0, 1, 11])
    };
    match kind {
        0 => {
            let momentum = if rng.random_bool(0.6) {
                rng.random_range(0.1..0.95)
            } else {
                0.0
            };
            let nesterov = momentum > 0.0 && rng.random_bool(0.5);
            Sgd::default()
                .lr(lr)
                .momentum(momentum)
                .dampening(if nesterov {
                    0.0
                } else {
                    rng.random_range(0.0..0.5)
                })
                .nesterov(nesterov)
                .weight_decay(decay)
                .maximize(maximize)
                .into()
        }
        1 => Asgd::default()
            .lr(lr)
            .t0(rng.random_range(0.0..4.0))
            .weight_decay(decay)
            .into(),
        2 => RmsProp::default()
            .lr(lr)
            .alpha(rng.random_range(0.8..0.999))
            .momentum(if rng.random_bool(0.5) {
                rng.random_range(0.1..0.9)
            } else {
                0.0
            })
            .centered(rng.random_bool(0.5))
            .weight_decay(decay)
            .maximize(maximize)
            .into(),
        3 => Adagrad::default()
            .lr(lr)
            .lr_decay(rng.random_range(0.0..0.1))
            .weight_decay(decay)
            .into(),
        4 => Adadelta::default()
            .lr(lr * 100.0)
            .rho(rng.random_range(0.8..0.99))
            .weight_decay(decay)
            .into(),
        5 => Adam::default()
            .lr(lr)
            .betas(beta1, beta2)
            .amsgrad(rng.random_bool(0.4))
            .weight_decay(decay)
            .maximize(maximize)
            .into(),
        6 => AdamW::default()
            .lr(lr)
            .betas(beta1, beta2)
            .amsgrad(rng.random_bool(0.4))
            .weight_decay(decay)
            .into(),
        7 => Adamax::default()
            .lr(lr)
            .betas(beta1, beta2)
            .weight_decay(decay)
            .into(),
        8 => NAdam::default()
            .lr(lr)
            .betas(beta1, beta2)
            .decoupled_weight_decay(rng.random_bool(0.5))
            .weight_decay(decay)
            .into(),
        9 => RAdam::default()
            .lr(lr)
            .betas(beta1, beta2)
            .decoupled_weight_decay(rng.random_bool(0.5))
            .weight_decay(decay)
            .into(),
        10 => Rprop::default().lr(lr).into(),
        _ => Sgd::default().lr(lr).into(),
    }
}

/// The setup drawn from `seed`.
pub fn draw(seed: u64) -> Setup {
    draw_setup(seed, false)
}

/// The setup drawn from `seed` with no function whose derivative jumps: no ReLU and its kin,
/// ELU or SELU (at 0), hard clamps or L1 loss (at a zero residual), where the two backends
/// compare step by step. A pre-activation (or residual) that lands within rounding of a jump
/// is on one side of it on one backend and on the other on the other, since their products
/// sum in different orders: that sample's gradient through that unit then differs by all of
/// itself, a right answer on each backend. Random setups met one such ReLU in about 5 000
/// cases, which would fail about one CI run in fifty. The functions with jumps are compared
/// in lockstep at fixed seeds (`train.rs`), kernel by kernel on random data
/// (`layer_kernels.rs`), and in the random setups that run on one backend (`draw`).
pub fn draw_smooth(seed: u64) -> Setup {
    draw_setup(seed, true)
}

fn draw_setup(seed: u64, smooth: bool) -> Setup {
    let rng = &mut StdRng::seed_from_u64(seed);
    let inputs = rng.random_range(3..=6);
    let embedding = rng.random_bool(0.25).then(|| {
        let vocab = rng.random_range(2..=12);
        let table = Embedding::new(vocab, rng.random_range(1..=4))
            .column(rng.random_range(0..inputs), inputs);
        if rng.random_bool(0.3) {
            table.padding_idx(rng.random_range(0..vocab))
        } else {
            table
        }
    });
    // The features the stack starts from (an embedding's index column gone, its vector in).
    let features = embedding.map_or(inputs, |e| inputs - 1 + e.dim);
    let mut parts: Vec<Part> = Vec::new();
    for _ in 0..rng.random_range(1..=4) {
        let part = match rng.random_range(0..7) {
            6 if width(features, &parts).is_multiple_of(2) => Part::Glu,
            6 => Part::Linear(2 * rng.random_range(1..=9), activation(rng, smooth)),
            0 | 1 => Part::Linear(rng.random_range(2..=19), activation(rng, smooth)),
            3 if embedding.is_none() && normalisable(parts.last()) => Part::BatchNorm,
            // A layer norm over one or two features gives (nearly) constant outputs, whose
            // gradients are rounding: over three or more only.
            2 | 3 if width(features, &parts) >= 3 && rng.random_bool(0.5) => Part::LayerNorm,
            2 | 3 if width(features, &parts) >= 3 => Part::RmsNorm,
            2 | 3 => Part::Linear(rng.random_range(3..=19), Activation::Tanh),
            4 if rng.random_bool(0.5) => Part::Nonlinearity(nonlinearity(rng, smooth)),
            4 => Part::Dropout(rng.random_range(0.05..0.5), rng.random()),
            // Its block starts with a layer norm.
            _ if width(features, &parts) >= 3 => Part::Residual(nonlinearity(rng, smooth)),
            _ => Part::Linear(rng.random_range(3..=19), Activation::Sigmoid),
        };
        parts.push(part);
    }
    let (loss, outputs) = match rng.random_range(0..8) {
        0 => (Loss::MeanSquaredError, rng.random_range(1..=3)),
        1 => (Loss::BinaryCrossEntropyWithLogits, 1),
        2 => (
            Loss::BinaryCrossEntropyWithLogitsWeighted {
                pos_weight: rng.random_range(0.2..4.0),
            },
            1,
        ),
        3 => (Loss::SoftmaxCrossEntropy, rng.random_range(2..=4)),
        4 => (
            Loss::SoftmaxCrossEntropySmoothed {
                smoothing: rng.random_range(0.0..0.3),
            },
            rng.random_range(2..=4),
        ),
        5 if smooth => (Loss::SmoothL1 { beta: 0.5 }, rng.random_range(1..=3)),
        5 => (Loss::L1, rng.random_range(1..=3)),
        6 => (
            Loss::Huber {
                delta: rng.random_range(0.2..2.0),
            },
            rng.random_range(1..=3),
        ),
        _ => (
            Loss::SmoothL1 {
                beta: rng.random_range(0.2..2.0),
            },
            rng.random_range(1..=3),
        ),
    };
    let rows = rng.random_range(20..=90);
    // The L1 family's gradient sums equal terms of either sign (±1/n, or ±δ/n for Huber's
    // linear arms), which cancel exactly where as many fall on each side: zero but for
    // rounding, which the adaptive optimizers scale up to a whole step. Those losses train
    // here with optimizers whose step the rounding stays a rounding of.
    let adaptive = !matches!(loss, Loss::L1 | Loss::Huber { .. } | Loss::SmoothL1 { .. });
    let config = optimizer(rng, adaptive);
    let is_rprop = matches!(config, OptimizerConfig::Rprop(_));
    // A batch norm over two or three rows gives (nearly) constant outputs, as a layer norm
    // over two features does: its batches are four rows or more.
    let normed = parts.iter().any(|p| matches!(p, Part::BatchNorm));
    let mut trainer = Trainer::new(config, loss)
        .batch_size(rng.random_range(if normed { 4 } else { 2 }..=rows / 2))
        .accumulate_grad_batches(rng.random_range(1..=3))
        .drop_last(normed || rng.random_bool(0.3))
        .batch_order(if rng.random_bool(0.5) {
            BatchOrder::Shuffled
        } else {
            BatchOrder::InOrder
        })
        .steps_per_submit(rng.random_range(1..=3))
        .seed(rng.random())
        .clip(Clip {
            max_norm: rng.random_bool(0.3).then(|| rng.random_range(0.1..2.0)),
            max_value: rng.random_bool(0.3).then(|| rng.random_range(0.01..0.5)),
        });
    if !is_rprop {
        trainer = trainer.schedule(match rng.random_range(0..4) {
            0 => LrSchedule::constant(),
            1 => LrSchedule::step(rng.random_range(1..4), 0.5),
            2 => {
                LrSchedule::cosine(rng.random_range(2..10), 0.0).with_warmup(rng.random_range(0..3))
            }
            _ => LrSchedule::one_cycle(OneCycle::new(1000).without_momentum_cycle()),
        });
    }
    if matches!(
        loss,
        Loss::SoftmaxCrossEntropy | Loss::SoftmaxCrossEntropySmoothed { .. }
    ) && rng.random_bool(0.4)
    {
        trainer = trainer.class_weights((0..outputs).map(|_| rng.random_range(0.2..3.0)).collect());
    }
    match rng.random_range(0..4) {
        0 => trainer = trainer.param_group(ParamGroup::one_dimensional().weight_decay(0.0)),
        1 => {
            trainer = trainer
                .param_group(ParamGroup::matching("*.bias").lr_scale(rng.random_range(0.1..3.0)))
        }
        2 => trainer = trainer.param_group(ParamGroup::matching("0.*").frozen()),
        _ => {}
    }
    if rng.random_bool(0.2) {
        trainer = trainer.ema(rng.random_range(0.5..0.999));
    }
    if rng.random_bool(0.15) && !matches!(trainer.optimizer(), OptimizerConfig::Asgd(_)) {
        let lr = trainer.optimizer().lr() * 0.5;
        let swa = Swa::new(rng.random_range(0..3), lr).anneal_epochs(rng.random_range(1..3));
        trainer = trainer.swa(swa);
    }
    Setup {
        inputs,
        embedding,
        parts,
        outputs,
        loss,
        rows,
        data_seed: rng.random(),
        trainer,
    }
}

/// The drawn stack on `backend`, from one initialisation seed (the same parameters on both).
pub fn network<B: Backend>(backend: &B, setup: &Setup) -> steepest::Result<Sequential<B>> {
    let mut width = setup.inputs;
    let mut layers: Vec<Box<dyn Layer<B>>> = Vec::new();
    if let Some(table) = setup.embedding {
        layers.push(Box::new(table));
        width = setup.inputs - 1 + table.dim;
    }
    for part in &setup.parts {
        match *part {
            Part::Linear(outputs, act) => {
                layers.push(Box::new(Linear::new(width, outputs).with_activation(act)));
                width = outputs;
            }
            Part::LayerNorm => layers.push(Box::new(LayerNorm::new(width))),
            Part::RmsNorm => layers.push(Box::new(RmsNorm::new(width))),
            Part::BatchNorm => layers.push(Box::new(BatchNorm::new(width))),
            Part::Nonlinearity(f) => layers.push(Box::new(Elementwise::new(width, f))),
            Part::Dropout(p, seed) => layers.push(Box::new(Dropout::new(width, p, seed))),
            Part::Glu => {
                layers.push(Box::new(Glu::new(width)));
                width /= 2;
            }
            Part::Residual(f) => {
                let block: Vec<Box<dyn Layer<B>>> = vec![
                    Box::new(LayerNorm::new(width)),
                    Box::new(Linear::new(width, width)),
                    Box::new(Elementwise::new(width, f)),
                ];
                layers.push(Box::new(Residual::new(block)?));
            }
        }
    }
    layers.push(Box::new(Linear::new(width, setup.outputs)));
    Sequential::new(backend, layers, Init::default(), 7)
}

/// Random data for `setup`: features, an embedding's indices, and targets its loss takes.
pub fn dataset(setup: &Setup) -> Dataset {
    let rng = &mut StdRng::seed_from_u64(setup.data_seed);
    let mut x = super::random_matrix(rng, setup.rows, setup.inputs, 1.5);
    if let Some(table) = setup.embedding {
        for r in 0..setup.rows {
            x[[r, table.column]] = rng.random_range(0..table.vocab) as f32;
        }
    }
    match setup.loss {
        Loss::SoftmaxCrossEntropy | Loss::SoftmaxCrossEntropySmoothed { .. } => {
            let labels: Vec<usize> = (0..setup.rows)
                .map(|_| rng.random_range(0..setup.outputs))
                .collect();
            Dataset::classification(x, &labels, setup.outputs).unwrap()
        }
        loss if loss.is_binary() => {
            let y = ndarray::Array2::from_shape_fn((setup.rows, 1), |_| {
                f32::from(u8::from(rng.random_bool(0.5)))
            });
            Dataset::regression(x, y).unwrap()
        }
        _ => {
            let y = super::random_matrix(rng, setup.rows, setup.outputs, 2.0);
            Dataset::regression(x, y).unwrap()
        }
    }
}
