//! `ParamGroup`'s patterns, resolution and checks.

use super::*;

#[test]
fn patterns_match_whole_names() {
    let cases = [
        ("*.bias", "0.bias", true),
        ("*.bias", "layers.12.bias", true),
        ("*.bias", "0.bias_extra", false),
        ("*.bias", "bias", false),
        ("0.*", "0.weight", true),
        ("0.*", "10.weight", false),
        ("layers.*.weight", "layers.3.weight", true),
        ("layers.*.weight", "layers.3.bias", false),
        ("*", "anything", true),
        ("a*b*c", "abc", true),
        ("a*b*c", "axxbyyc", true),
        ("a*b*c", "axxcyyb", false),
        ("*ab", "aab", true),
        ("exact", "exact", true),
        ("exact", "exactly", false),
        ("", "", true),
        ("", "x", false),
    ];
    for (pattern, name, expected) in cases {
        assert_eq!(
            glob_matches(pattern, name),
            expected,
            "{pattern:?} on {name:?}"
        );
    }
}

#[test]
fn resolve_takes_tensors_with_their_padding_and_refuses_ambiguity() {
    let tensors: Vec<(String, usize)> = [
        ("0.weight", 2),
        ("0.bias", 1),
        ("1.weight", 2),
        ("1.bias", 1),
    ]
    .map(|(n, d)| (n.to_string(), d))
    .to_vec();
    let offsets = [0, 128, 192, 448];
    for groups in [
        [ParamGroup::matching("*.bias").weight_decay(0.0)],
        [ParamGroup::one_dimensional().weight_decay(0.0)],
    ] {
        let got = ParamGroup::resolve(&groups, &tensors, &offsets, 512).unwrap();
        assert_eq!(got[0].ranges, vec![128..192, 448..512]);
        assert_eq!(got[0].settings.weight_decay, Some(0.0));
    }
    let two = [ParamGroup::matching("*.bias"), ParamGroup::matching("1.*")];
    let err = ParamGroup::resolve(&two, &tensors, &offsets, 512).unwrap_err();
    assert!(
        err.to_string().contains("\"1.bias\" is in group 0"),
        "{err}"
    );
    let none = [ParamGroup::matching("*.gamma").or_matching("2.*")];
    let err = ParamGroup::resolve(&none, &tensors, &offsets, 512).unwrap_err();
    assert!(
        err.to_string()
            .contains("(\"*.gamma\" or \"2.*\") picks no parameter"),
        "{err}"
    );
    for offsets in [&[0, 1, 2][..], &[0, 192, 128, 448], &[0, 128, 192, 600]] {
        assert!(ParamGroup::resolve(&none, &tensors, offsets, 512).is_err());
    }
}

#[test]
fn a_new_base_rate_scales_every_group_and_each_keeps_its_branches() {
    use crate::optim::{OptimizerCore, Sgd};
    let sgd = Sgd::default().lr(0.1).weight_decay(0.01);
    let mut core = OptimizerCore::new(sgd.into(), 10).unwrap();
    let halved = GroupSettings {
        lr_scale: 0.5,
        weight_decay: Some(0.0),
        ..GroupSettings::default()
    };
    core.set_groups(vec![ArenaGroup {
        ranges: vec![0..5],
        settings: halved,
    }])
    .unwrap();
    core.set_lr(0.02).unwrap();
    assert_eq!(core.group_config(0).unwrap().lr(), 0.02);
    assert_eq!(core.group_config(1).unwrap().lr(), 0.01);
    let steps: Vec<_> = core.group_steps(1).unwrap().into_iter().flatten().collect();
    assert!(steps[0].0.l2 && !steps[1].0.l2, "only group 0 adds λθ");
    assert_eq!((steps[0].1.lr, steps[1].1.lr), (0.02, 0.01));
    assert!(core.group_config(2).is_err());
    // A rate whose group rate would overflow f32 is refused; the rate stays.
    let mut fast = core.clone();
    fast.set_groups(vec![ArenaGroup {
        ranges: vec![0..5],
        settings: GroupSettings {
            lr_scale: 1e10,
            weight_decay: None,
            ..GroupSettings::default()
        },
    }])
    .unwrap();
    assert!(fast.set_lr(1e30).is_err());
    assert_eq!(fast.config.lr(), 0.02);
}

#[test]
fn settings_scale_the_rate_and_replace_the_decay() {
    let adamw: OptimizerConfig = crate::optim::AdamW::default().lr(0.01).into();
    let grouped = GroupSettings {
        lr_scale: 0.5,
        weight_decay: Some(0.0),
        ..GroupSettings::default()
    }
    .apply(&adamw)
    .unwrap();
    assert_eq!(grouped.lr(), 0.005);
    assert_eq!(grouped.weight_decay(), 0.0);
    let bad = GroupSettings {
        lr_scale: -1.0,
        weight_decay: None,
        ..GroupSettings::default()
    };
    assert!(bad.apply(&adamw).is_err());
    let rprop: OptimizerConfig = crate::optim::Rprop::default().into();
    let decay = GroupSettings {
        lr_scale: 1.0,
        weight_decay: Some(0.1),
        ..GroupSettings::default()
    };
    assert!(decay.apply(&rprop).is_err());
}

#[test]
fn frozen_groups_train_nothing_and_take_no_other_setting() {
    use crate::optim::{OptimizerCore, Rprop, Sgd};
    let frozen = GroupSettings {
        frozen: true,
        ..GroupSettings::default()
    };
    let sgd: OptimizerConfig = Sgd::default().lr(0.1).into();
    let mut core = OptimizerCore::new(sgd, 10).unwrap();
    let head = ArenaGroup {
        ranges: vec![0..4],
        settings: frozen,
    };
    core.set_groups(vec![head.clone()]).unwrap();
    assert!(core.trains(0) && !core.trains(1));
    let steps = core.group_steps(1).unwrap();
    assert!(steps[0].is_some() && steps[1].is_none());
    let trained: Vec<_> = core.trained_segments().map(|s| s.range.clone()).collect();
    assert_eq!(trained, vec![4..10]);
    // Nothing left to train is refused, as PyTorch refuses an empty optimizer.
    let all = ArenaGroup {
        ranges: vec![0..10],
        settings: frozen,
    };
    let err = core.set_groups(vec![all]).unwrap_err();
    assert!(
        err.to_string().contains("nothing is left to train"),
        "{err}"
    );
    assert_eq!(core.groups, vec![head], "a refused change changes nothing");
    // A frozen group's rate or decay would be ignored: refused, naming it.
    for (settings, named) in [
        (
            GroupSettings {
                lr_scale: 0.5,
                ..frozen
            },
            "lr_scale",
        ),
        (
            GroupSettings {
                weight_decay: Some(0.0),
                ..frozen
            },
            "weight_decay",
        ),
    ] {
        let err = settings.apply(&sgd).unwrap_err();
        assert!(err.to_string().contains(named), "{err}");
    }
    // Rprop takes frozen groups, and no other.
    let mut rprop = OptimizerCore::new(Rprop::default().into(), 10).unwrap();
    let plain = ArenaGroup {
        ranges: vec![0..4],
        settings: GroupSettings::default(),
    };
    assert!(rprop.set_groups(vec![plain]).is_err());
    rprop
        .set_groups(vec![ArenaGroup {
            ranges: vec![0..4],
            settings: frozen,
        }])
        .unwrap();
}

#[test]
fn a_group_optimizer_keeps_the_kind_the_rate_and_the_state() {
    use crate::optim::{Adagrad, Adam, AdamW, NAdam, OptimizerCore, Sgd};
    let check = |base: OptimizerConfig, own: OptimizerConfig| {
        let mut core = OptimizerCore::new(base, 10)?;
        let settings = GroupSettings {
            optimizer: Some(own),
            lr_scale: 0.5,
            ..GroupSettings::default()
        };
        core.set_groups(vec![ArenaGroup {
            ranges: vec![0..4],
            settings,
        }])
        .map(|()| core)
    };
    let adam = Adam::default().lr(0.01);
    let core = check(adam.into(), adam.betas(0.8, 0.95).eps(1e-6).into()).unwrap();
    // The group's own betas and ε, at half the optimizer's rate (as lr_scale says).
    let OptimizerConfig::Adam(own) = core.group_config(1).unwrap() else {
        panic!("not Adam");
    };
    assert_eq!((own.betas, own.eps, own.lr), ((0.8, 0.95), 1e-6, 0.005));
    let sgd = Sgd::default().lr(0.1).momentum(0.9);
    check(sgd.into(), sgd.momentum(0.5).nesterov(true).into()).unwrap();
    let nadam = NAdam::default();
    check(nadam.into(), nadam.betas(0.9, 0.99).eps(1e-6).into()).unwrap();
    // Refused: another kind, another rate, other state buffers or starting values.
    for (base, own, words) in [
        (
            adam.into(),
            AdamW::default().lr(0.01).into(),
            "must configure Adam",
        ),
        (adam.into(), adam.lr(0.02).into(), "lr = 0.02"),
        (adam.into(), adam.amsgrad(true).into(), "max_exp_avg_sq"),
        (sgd.into(), sgd.momentum(0.0).into(), "momentum_buffer"),
        (
            Adagrad::default().into(),
            Adagrad::default().initial_accumulator_value(0.1).into(),
            "starting at",
        ),
        (
            NAdam::default().into(),
            NAdam::default().momentum_decay(0.002).into(),
            "one running product",
        ),
        (
            NAdam::default().into(),
            NAdam::default().betas(0.8, 0.999).into(),
            "one running product",
        ),
    ] {
        let err = check(base, own).unwrap_err();
        assert!(err.to_string().contains(words), "{err} lacks {words}");
    }
}

#[test]
fn frozen_is_a_builder_setting() {
    let group = ParamGroup::matching("layers.0.*").frozen();
    assert!(group.settings.frozen);
    assert!(!ParamGroup::matching("x").settings.frozen);
}
