//! The training settings a checkpoint records and a resumed run must share to continue the
//! same trajectory: their texts, the values older files lacked, and how a difference is named.

use crate::tensor_file::File;

/// The training settings a resumed run must share to continue the same trajectory, as
/// (metadata key, value); those added since the first files have their value in older files
/// in `saved_setting`.
pub(super) fn settings(trainer: &super::Trainer) -> [(String, String); 15] {
    [
        ("batch_order".into(), format!("{:?}", trainer.batch_order)),
        ("seed".into(), trainer.seed.to_string()),
        (
            "batch_size".into(),
            trainer
                .batch_size
                .map_or("full batch".into(), |b| b.to_string()),
        ),
        (
            "optimizer_settings".into(),
            format!("{:?}", trainer.optimizer),
        ),
        ("schedule".into(), format!("{:?}", trainer.schedule)),
        ("clipping".into(), format!("{:?}", trainer.clip)),
        ("restore_best".into(), trainer.restore_best.to_string()),
        ("lr_on_plateau".into(), format!("{:?}", trainer.lr_plateau)),
        ("watched".into(), format!("{:?}", trainer.watched)),
        ("param_groups".into(), format!("{:?}", trainer.param_groups)),
        ("grad_batches".into(), trainer.accumulate.to_string()),
        ("ema".into(), format!("{:?}", trainer.ema)),
        ("swa".into(), format!("{:?}", trainer.swa)),
        ("drop_last".into(), trainer.drop_last.to_string()),
        (
            "class_weights".into(),
            format!("{:?}", trainer.class_weights),
        ),
    ]
}

/// A setting as the file saved it. Files from before a setting existed lack it: they get the
/// value every run had then.
pub(super) fn saved_setting(file: &File, key: &str) -> Option<String> {
    if let Some(value) = file.metadata.get(key) {
        return Some(match key {
            "param_groups" => with_new_group_fields(value),
            "schedule" => with_warmup_start_field(value),
            _ => value.clone(),
        });
    }
    match key {
        "batch_order" => Some(format!("{:?}", super::BatchOrder::Shuffled)),
        "restore_best" => Some(false.to_string()),
        "lr_on_plateau" => Some(format!("{:?}", None::<crate::optim::ReduceLrOnPlateau>)),
        "watched" => Some(format!("{:?}", super::Watched::Loss)),
        "param_groups" => Some(format!("{:?}", Vec::<crate::optim::ParamGroup>::new())),
        "grad_batches" => Some(1.to_string()),
        "ema" => Some(format!("{:?}", None::<f64>)),
        "swa" => Some(format!("{:?}", None::<crate::optim::Swa>)),
        "drop_last" => Some(false.to_string()),
        "class_weights" => Some(format!("{:?}", None::<Vec<f32>>)),
        _ => None,
    }
}

/// The saved `param_groups` setting with the fields `GroupSettings` gained since (`frozen:
/// false`, `optimizer: None`) in every group's settings saved without them (`GroupSettings {
/// lr_scale: …, weight_decay: …[, frozen: …] }`, nothing nested), so such a file resumes under
/// the same groups today.
fn with_new_group_fields(saved: &str) -> String {
    const OPEN: &str = "GroupSettings {";
    let mut out = String::with_capacity(saved.len());
    let mut rest = saved;
    while let Some(end) = rest
        .find(OPEN)
        .and_then(|at| Some(at + rest[at..].find(" }")?))
    {
        let fields = &rest[..end];
        out.push_str(fields);
        // Today's settings name an optimizer (whose own braces end `fields` early).
        if !fields.contains("optimizer:") {
            if !fields.contains("frozen:") {
                out.push_str(", frozen: false");
            }
            out.push_str(", optimizer: None");
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The saved `schedule` setting with `warmup_start: None` where it was saved before the
/// field existed (`LrSchedule { decay: …, warmup: N }`, the warm-up every schedule had then).
fn with_warmup_start_field(saved: &str) -> String {
    match saved.strip_suffix(" }") {
        Some(fields) if !fields.contains("warmup_start:") => {
            format!("{fields}, warmup_start: None }}")
        }
        _ => saved.to_string(),
    }
}

/// Whether the settings named by `keys` are the same in the file as in `trainer`.
pub(super) fn unchanged(file: &File, trainer: &super::Trainer, keys: &[&str]) -> bool {
    settings(trainer)
        .into_iter()
        .filter(|(key, _)| keys.contains(&key.as_str()))
        .all(|(key, want)| saved_setting(file, &key) == Some(want))
}

/// The first differing `, `-separated parts of two settings' texts (the field that differs,
/// e.g. `amsgrad: false` and `amsgrad: true`; inside a nested struct, from its last `{ ` on,
/// where both parts open the same structs, and without the ` }` and `]` closing them, where
/// both close the same), or the whole texts.
pub(super) fn difference(saved: &str, now: &str) -> (String, String) {
    let closing = |a: &str| a.len() - a.trim_end_matches([' ', '}', ']']).len();
    let innermost = |a: &str, b: &str| {
        let (a, b) = match (a.rfind("{ "), b.rfind("{ ")) {
            (Some(i), Some(j)) if a[..i] == b[..j] => (&a[i + 2..], &b[j + 2..]),
            _ => (a, b),
        };
        let (end_a, end_b) = (a.len() - closing(a), b.len() - closing(b));
        match a[end_a..] == b[end_b..] && a[end_a..].starts_with(" }") {
            true => (a[..end_a].to_string(), b[..end_b].to_string()),
            false => (a.to_string(), b.to_string()),
        }
    };
    saved
        .split(", ")
        .zip(now.split(", "))
        .find(|(a, b)| a != b)
        .filter(|_| saved.split(", ").count() == now.split(", ").count())
        .map_or((saved.to_string(), now.to_string()), |(a, b)| {
            innermost(a, b)
        })
}

#[cfg(test)]
mod tests {
    use super::with_new_group_fields;
    use crate::optim::ParamGroup;

    #[test]
    fn groups_saved_before_new_fields_read_with_their_defaults() {
        // As the seventeenth session saved them (no `frozen`), and as the first commit with
        // frozen groups did (no `optimizer`).
        let oldest = "[ParamGroup { patterns: [\"*.bias\"], one_dimensional: true, settings: \
                      GroupSettings { lr_scale: 0.5, weight_decay: Some(0.0) } }, ParamGroup { \
                      patterns: [], one_dimensional: false, settings: GroupSettings { lr_scale: \
                      1.0, weight_decay: None } }]";
        let older = oldest
            .replace("Some(0.0) }", "Some(0.0), frozen: false }")
            .replace("None }", "None, frozen: true }");
        let groups = [
            ParamGroup::one_dimensional()
                .or_matching("*.bias")
                .lr_scale(0.5)
                .weight_decay(0.0),
            ParamGroup {
                patterns: Vec::new(),
                ..ParamGroup::matching("x")
            },
        ];
        let today = format!("{groups:?}");
        assert_eq!(with_new_group_fields(oldest), today);
        let frozen = today.replacen(
            "frozen: false, optimizer: None } }]",
            "frozen: true, optimizer: None } }]",
            1,
        );
        assert_eq!(with_new_group_fields(&older), frozen);
        // Today's text (with an optimizer's own braces inside), and no groups, are left alone.
        assert_eq!(with_new_group_fields(&today), today);
        let own = format!(
            "{:?}",
            [ParamGroup::matching("*.bias")
                .optimizer(crate::optim::Adam::default().betas(0.8, 0.9))]
        );
        assert!(own.contains("optimizer: Some(Adam(Adam {"), "{own}");
        assert_eq!(with_new_group_fields(&own), own);
        assert_eq!(with_new_group_fields("[]"), "[]");
    }

    #[test]
    fn schedules_saved_before_warmup_start_read_as_the_warmup_they_had() {
        use super::with_warmup_start_field;
        use crate::optim::LrSchedule;
        let schedule = LrSchedule::cosine(10, 0.0).with_warmup(3);
        let today = format!("{schedule:?}");
        let before = today.replace(", warmup_start: None", "");
        assert!(!before.contains("warmup_start"), "{before}");
        assert_eq!(with_warmup_start_field(&before), today);
        assert_eq!(with_warmup_start_field(&today), today);
        let own = format!("{:?}", LrSchedule::cosine(10, 0.0).with_warmup_from(3, 0.1));
        assert_eq!(with_warmup_start_field(&own), own);
    }
}
