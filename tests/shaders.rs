//! Every WGSL file parses and validates with naga, with no GPU involved: `activation.wgsl`
//! alone, and every kernel file with it in front, as the host prepends it to those that apply
//! the activations (so no kernel may define its functions again).
//!
//! The files are compiled into this test (as the library embeds them), so it runs where the
//! source tree is not, as on a GPU machine that is sent the test binaries alone. `.ci/run`
//! checks that the list below names every file of `shaders/`.

/// Every file of `shaders/`, by name, with its text.
macro_rules! shader_files {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../shaders/", $name)))),*]
    };
}

const SHADERS: [(&str, &str); 18] = shader_files![
    "activation.wgsl",
    "batch_norm.wgsl",
    "copy.wgsl",
    "dropout.wgsl",
    "elementwise.wgsl",
    "embedding.wgsl",
    "gather.wgsl",
    "glu.wgsl",
    "layer_norm.wgsl",
    "linear_backward.wgsl",
    "linear_chain.wgsl",
    "loss.wgsl",
    "matmul.wgsl",
    "nonlinearity.wgsl",
    "optim.wgsl",
    "reduce.wgsl",
    "reduce_terms.wgsl",
    "transpose.wgsl",
];

#[test]
fn every_shader_parses_and_validates() {
    let prelude = SHADERS
        .iter()
        .find(|(name, _)| *name == "activation.wgsl")
        .map(|(_, text)| *text)
        .unwrap();
    for (name, file) in SHADERS {
        assert!(
            file.starts_with("//"),
            "{name} must open with a comment on its bindings, dispatch and formula"
        );
        let source = if name == "activation.wgsl" {
            file.to_string()
        } else {
            format!("{prelude}{file}")
        };
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{name} does not parse:\n{}", e.emit_to_string(&source)));
        // Kernels take their per-dispatch values as immediate data (push constants).
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::IMMEDIATES,
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name} does not validate:\n{}", e.emit_to_string(&source)));
    }
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
