//! Datasets, generators, standardisation, initialisation and the history export.

use ndarray::{Array2, ArrayD, IxDyn, array};
use steepest::data::{blobs, linear, moons, spirals};
use steepest::{
    Activation, CpuBackend, Dataset, EpochRecord, Error, History, Init, Mlp, MlpSpec, Standardizer,
    StepRecord, StopReason,
};

#[test]
fn generators_are_seeded_and_labelled() {
    for make in [
        |seed| spirals(200, 0.05, seed).unwrap(),
        |seed| moons(200, 0.1, seed).unwrap(),
        |seed| blobs(200, &[[0.0, 0.0], [3.0, 3.0], [-3.0, 2.0]], 0.5, seed).unwrap(),
    ] {
        let (a, b, c) = (make(1), make(1), make(2));
        assert_eq!(a, b, "same seed, same data");
        assert_ne!(a.x(), c.x(), "another seed, other data");
        assert_eq!(a.len(), 200);
        let labels = a.labels().unwrap();
        let classes = a.classes().unwrap();
        // Classes are balanced: the generators deal samples round-robin.
        for class in 0..classes {
            let count = labels.iter().filter(|&&l| l == class).count();
            assert!(count.abs_diff(200 / classes) <= 1, "class {class}: {count}");
        }
    }
    // Blobs sit around their centers.
    let b = blobs(3000, &[[5.0, -5.0], [-5.0, 5.0]], 0.5, 3).unwrap();
    let labels = b.labels().unwrap();
    let mean_x0: f32 = (0..3000)
        .filter(|&i| labels[i] == 0)
        .map(|i| b.x()[[i, 0]])
        .sum::<f32>()
        / 1500.0;
    assert!((mean_x0 - 5.0).abs() < 0.1, "{mean_x0}");
}

#[test]
fn linear_data_follows_its_line() {
    let d = linear(500, &[2.0, -1.0], 0.5, 0.0, 4).unwrap();
    for r in 0..500 {
        let want = 2.0 * d.x()[[r, 0]] - d.x()[[r, 1]] + 0.5;
        assert!((d.y()[[r, 0]] - want).abs() < 1e-5);
    }
    let noisy = linear(5000, &[0.0], 0.0, 0.3, 4).unwrap();
    let std = noisy.y().std(0.0);
    assert!((std - 0.3).abs() < 0.02, "noise σ {std}");
}

/// Classes of 97, 3, 40 and 1 samples (row i's first feature is i, so rows can be told apart):
/// a stratified split keeps each class's share to within one sample, the total at
/// round(fraction · n), every row in exactly one part, the rare classes in proportion where
/// a plain split may drop them, the classes mixed in both parts, and the same parts for the
/// same seed.
#[test]
fn a_stratified_split_keeps_each_class_share() {
    let sizes = [97usize, 3, 40, 1];
    let labels: Vec<usize> = (0..sizes.len())
        .flat_map(|c| std::iter::repeat_n(c, sizes[c]))
        .collect();
    let n = labels.len();
    let x = Array2::from_shape_fn((n, 2), |(i, j)| if j == 0 { i as f32 } else { 0.5 });
    let d = Dataset::classification(x, &labels, 4).unwrap();
    for (fraction, seed) in [(0.2, 1), (0.25, 2), (0.5, 3), (0.1, 4), (0.7, 5)] {
        let (train, val) = d.split_stratified(fraction, seed).unwrap();
        let what = format!("fraction {fraction} seed {seed}");
        assert_eq!(val.len(), (fraction * n as f64).round() as usize, "{what}");
        let mut rows: Vec<usize> = (train.x().column(0).iter())
            .chain(val.x().column(0).iter())
            .map(|&v| v as usize)
            .collect();
        rows.sort_unstable();
        assert_eq!(
            rows,
            (0..n).collect::<Vec<_>>(),
            "{what}: a row lost or doubled"
        );
        for (c, &size) in sizes.iter().enumerate() {
            let in_val = val.labels().unwrap().iter().filter(|&&l| l == c).count();
            let share = fraction * size as f64;
            assert!(
                (in_val as f64 - share).abs() < 1.0,
                "{what}: class {c} of {size} has {in_val} in validation, its share {share}"
            );
            let in_train = train.labels().unwrap().iter().filter(|&&l| l == c).count();
            assert_eq!(in_train + in_val, size, "{what}: class {c}");
        }
        // The classes rounded up are those whose shares lost the most to rounding down.
        let counts: Vec<usize> = (0..sizes.len())
            .map(|c| val.labels().unwrap().iter().filter(|&&l| l == c).count())
            .collect();
        let remainder =
            |c: usize| fraction * sizes[c] as f64 - (fraction * sizes[c] as f64).floor();
        let up = |c: usize| counts[c] as f64 > (fraction * sizes[c] as f64).floor();
        for (a, b) in (0..4).flat_map(|a| (0..4).map(move |b| (a, b))) {
            if up(a) && !up(b) {
                assert!(
                    remainder(a) >= remainder(b),
                    "{what}: class {a} rounded up before {b}"
                );
            }
        }
        // Shuffled: not class after class.
        let val_labels = val.labels().unwrap();
        assert!(!val_labels.is_sorted(), "{what}: {val_labels:?}");
        assert_eq!(d.split_stratified(fraction, seed).unwrap().1, val, "{what}");
    }
    assert_ne!(
        d.split_stratified(0.2, 1).unwrap().1,
        d.split_stratified(0.2, 6).unwrap().1
    );
    for bad in [0.0, 1.0, -0.1, f64::NAN, 0.001] {
        let err = d.split_stratified(bad, 1).unwrap_err().to_string();
        assert!(err.contains("empty part"), "{bad}: {err}");
    }
    let regression = Dataset::regression(d.x().clone(), d.x().clone()).unwrap();
    let err = regression.split_stratified(0.2, 1).unwrap_err().to_string();
    assert!(err.contains("no class labels"), "{err}");
}

/// Balanced class weights: n / (classes · n_c), 0 for a class with no sample; they make each
/// class's weights sum to the same; refused for data without labels.
#[test]
fn balanced_class_weights_count_each_class_alike() {
    let labels = [0, 0, 0, 0, 0, 0, 1, 1, 3, 0, 0, 1];
    let x = Array2::from_shape_fn((labels.len(), 1), |(i, _)| i as f32);
    let d = Dataset::classification(x.clone(), &labels, 4).unwrap();
    let weights = d.balanced_class_weights().unwrap();
    let n = labels.len() as f32;
    assert_eq!(
        weights,
        vec![n / (4.0 * 8.0), n / (4.0 * 3.0), 0.0, n / 4.0]
    );
    for c in [0, 1, 3] {
        let count = labels.iter().filter(|&&l| l == c).count() as f32;
        assert!((weights[c] * count - n / 4.0).abs() < 1e-6, "class {c}");
    }
    let regression = Dataset::regression(x.clone(), x).unwrap();
    let err = regression.balanced_class_weights().unwrap_err().to_string();
    assert!(err.contains("no class labels"), "{err}");
}

#[test]
fn split_is_a_seeded_partition() {
    let d = spirals(100, 0.0, 1).unwrap();
    let (train, val) = d.split(0.25, 9).unwrap();
    assert_eq!((train.len(), val.len()), (75, 25));
    let mut rows: Vec<Vec<u32>> = train
        .x()
        .rows()
        .into_iter()
        .chain(val.x().rows())
        .map(|r| r.iter().map(|v| v.to_bits()).collect())
        .collect();
    rows.sort();
    let mut all: Vec<Vec<u32>> = d
        .x()
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|v| v.to_bits()).collect())
        .collect();
    all.sort();
    assert_eq!(rows, all, "every sample lands in exactly one part");
    assert_eq!(d.split(0.25, 9).unwrap().1, val);
    assert!(matches!(d.split(0.0, 1), Err(Error::Data { .. })));
    assert!(matches!(d.split(1.0, 1), Err(Error::Data { .. })));
}

#[test]
fn standardizer_uses_the_training_statistics() {
    let train = Dataset::regression(array![[1.0, 5.0], [3.0, 5.0]], array![[0.0], [1.0]]).unwrap();
    let s = Standardizer::fit(&train);
    assert_eq!(s.mean().to_vec(), vec![2.0, 5.0]);
    assert_eq!(s.std().to_vec(), vec![1.0, 1.0]); // a constant feature keeps std 1
    let t = s.transform(&train).unwrap();
    assert_eq!(t.x(), &array![[-1.0, 0.0], [1.0, 0.0]]);
    let other = Dataset::regression(array![[4.0, 6.0]], array![[0.0]]).unwrap();
    assert_eq!(s.transform(&other).unwrap().x(), &array![[2.0, 1.0]]);
    let wrong = Dataset::regression(array![[4.0]], array![[0.0]]).unwrap();
    assert!(matches!(s.transform(&wrong), Err(Error::Data { .. })));
}

#[test]
fn bad_data_is_rejected_when_built() {
    let x = array![[1.0f32, 2.0], [3.0, 4.0]];
    assert!(matches!(
        Dataset::regression(Array2::zeros((0, 2)), Array2::zeros((0, 1))),
        Err(Error::Data { .. })
    ));
    assert!(matches!(
        Dataset::regression(x.clone(), array![[1.0]]),
        Err(Error::Data { .. })
    ));
    assert!(matches!(
        Dataset::regression(array![[f32::NAN, 1.0]], array![[1.0]]),
        Err(Error::Data { .. })
    ));
    assert!(matches!(
        Dataset::regression(x.clone(), array![[1.0], [f32::INFINITY]]),
        Err(Error::Data { .. })
    ));
    assert!(matches!(
        Dataset::classification(x.clone(), &[0, 2], 2),
        Err(Error::Label {
            row: 1,
            classes: 2,
            ..
        })
    ));
    assert!(matches!(
        Dataset::classification(x, &[0, 0], 1),
        Err(Error::Data { .. })
    ));
}

#[test]
fn initialisations_have_their_scales() {
    let n = 200;
    for (init, bound, sigma) in [
        (Init::PyTorchDefault, Some(1.0 / (n as f64).sqrt()), None),
        (
            Init::XavierUniform,
            Some((6.0 / (2.0 * n as f64)).sqrt()),
            None,
        ),
        (Init::HeUniform, Some((6.0 / n as f64).sqrt()), None),
        (
            Init::XavierNormal,
            None,
            Some((2.0 / (2.0 * n as f64)).sqrt()),
        ),
        (Init::HeNormal, None, Some((2.0 / n as f64).sqrt())),
    ] {
        let spec = MlpSpec::new(n).layer(n, Activation::Relu);
        let model = Mlp::new(&CpuBackend, &spec, init, 7).unwrap();
        let w: Vec<f64> = model.parameters_flat(&CpuBackend).unwrap()[..n * n]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let std = (w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64).sqrt();
        let expected = bound.map_or_else(|| sigma.unwrap(), |b| b / 3f64.sqrt());
        assert!(
            (std - expected).abs() < 0.03 * expected,
            "{init:?}: std {std}, expected {expected}"
        );
        if let Some(b) = bound {
            assert!(w.iter().all(|v| v.abs() <= b), "{init:?} exceeds its bound");
        }
        let again = Mlp::new(&CpuBackend, &spec, init, 7).unwrap();
        assert_eq!(
            again.parameters_flat(&CpuBackend).unwrap(),
            model.parameters_flat(&CpuBackend).unwrap()
        );
    }
}

#[test]
fn state_dict_uses_pytorch_names_and_layouts() {
    let spec = MlpSpec::new(3)
        .layer(4, Activation::Tanh)
        .layer(2, Activation::Identity);
    let mut model = Mlp::new(&CpuBackend, &spec, Init::default(), 1).unwrap();
    let state = model.state_dict(&CpuBackend).unwrap();
    let names: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "layers.0.weight",
            "layers.0.bias",
            "layers.1.weight",
            "layers.1.bias"
        ]
    );
    let shapes: Vec<&[usize]> = state.iter().map(|(_, a)| a.shape()).collect();
    assert_eq!(shapes, [&[4, 3][..], &[4], &[2, 4], &[2]]);

    // A weight set by name comes out of the forward pass as x·Wᵀ + b.
    let mut loaded = state.clone();
    loaded[2].1 =
        ArrayD::from_shape_vec(IxDyn(&[2, 4]), (0..8).map(|v| v as f32).collect()).unwrap();
    model.load_state_dict(&CpuBackend, &loaded).unwrap();
    assert_eq!(model.state_dict(&CpuBackend).unwrap(), loaded);

    let before = model.parameters_flat(&CpuBackend).unwrap();
    let mut wrong = loaded.clone();
    wrong[0].1 = ArrayD::zeros(IxDyn(&[3, 4])); // transposed
    assert!(matches!(
        model.load_state_dict(&CpuBackend, &wrong),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        model.load_state_dict(&CpuBackend, &loaded[..3]),
        Err(Error::Shape { .. })
    ));
    assert_eq!(
        model.parameters_flat(&CpuBackend).unwrap(),
        before,
        "a rejected load changes nothing"
    );
}

#[test]
fn history_exports_csv_and_json() {
    let record = |epoch, val: Option<f64>| EpochRecord {
        epoch,
        step: epoch as u64 * 10,
        loss: 0.5 / epoch as f64,
        accuracy: Some(0.75),
        val_loss: val,
        val_accuracy: None,
        grad_norm: Some(f64::NAN),
        update_ratio: None,
        lr: 0.01,
    };
    let history = History {
        epochs: vec![record(1, Some(0.6)), record(2, None)],
        steps: vec![StepRecord {
            step: 5,
            epoch: 1,
            loss: 0.7,
            lr: 0.01,
        }],
        stop: StopReason::Plateau { best: 0.25 },
        restored_epoch: Some(1),
    };
    assert_eq!(
        history.to_csv(),
        "epoch,step,loss,accuracy,val_loss,val_accuracy,grad_norm,update_ratio,lr\n\
         1,10,0.5,0.75,0.6,,NaN,,0.01\n\
         2,20,0.25,0.75,,,NaN,,0.01\n"
    );
    assert_eq!(
        history.to_json(),
        "{\"stop\":{\"plateau\":{\"best\":0.25}},\"restored_epoch\":1,\"epochs\":[\
         {\"epoch\":1,\"step\":10,\"loss\":0.5,\"accuracy\":0.75,\"val_loss\":0.6,\"val_accuracy\":null,\"grad_norm\":null,\"update_ratio\":null,\"lr\":0.01},\
         {\"epoch\":2,\"step\":20,\"loss\":0.25,\"accuracy\":0.75,\"val_loss\":null,\"val_accuracy\":null,\"grad_norm\":null,\"update_ratio\":null,\"lr\":0.01}],\
         \"steps\":[{\"step\":5,\"epoch\":1,\"loss\":0.7,\"lr\":0.01}]}\n"
    );
    let dir = std::env::temp_dir().join(format!("steepest-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    history.write_csv(dir.join("h.csv")).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("h.csv")).unwrap(),
        history.to_csv()
    );
    assert!(matches!(
        history.write_json(dir.join("missing/h.json")),
        Err(Error::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
