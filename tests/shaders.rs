//! Every WGSL file parses and validates with naga, with no GPU involved: `activation.wgsl`
//! alone, and every kernel file with it in front, as the host prepends it to those that apply
//! the activations (so no kernel may define its functions again).

use std::path::Path;

#[test]
fn every_shader_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let prelude = std::fs::read_to_string(dir.join("activation.wgsl")).unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wgsl") {
            continue;
        }
        let file = std::fs::read_to_string(&path).unwrap();
        assert!(
            file.starts_with("//"),
            "{} must open with a comment on its bindings, dispatch and formula",
            path.display()
        );
        let source = if path.ends_with("activation.wgsl") {
            file
        } else {
            format!("{prelude}{file}")
        };
        let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| {
            panic!(
                "{} does not parse:\n{}",
                path.display(),
                e.emit_to_string(&source)
            )
        });
        // Kernels take their per-dispatch values as immediate data (push constants).
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::IMMEDIATES,
        )
        .validate(&module)
        .unwrap_or_else(|e| {
            panic!(
                "{} does not validate:\n{}",
                path.display(),
                e.emit_to_string(&source)
            )
        });
        checked += 1;
    }
    assert!(checked > 0, "no shaders found in {}", dir.display());
}

#[test]
fn a_broken_shader_is_caught() {
    // The check above must be able to fail.
    assert!(naga::front::wgsl::parse_str("fn f( {").is_err());
    let module = naga::front::wgsl::parse_str("fn f() -> u32 { return 1.5; }");
    let valid = module.map(|m| {
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::default(),
        )
        .validate(&m)
        .is_ok()
    });
    assert!(!matches!(valid, Ok(true)));
}
