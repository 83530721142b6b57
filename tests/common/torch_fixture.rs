//! The tensors `tests/fixtures/torch_optim.py` saw PyTorch compute, compiled into the test
//! binaries that check against them (`torch_optim.rs`, `torch_training.rs`).

/// The fixture file (written by `torch_optim.py`), compiled in.
const FIXTURES: &[u8] = include_bytes!("../fixtures/torch_optim.safetensors");

/// Steps in every optimizer trajectory of the fixture.
pub const STEPS: usize = 14;

/// The fixture's tensor `name`: its values as f64 and its shape.
pub fn fixture(name: &str) -> (Vec<f64>, Vec<usize>) {
    let file = safetensors::SafeTensors::deserialize(FIXTURES).unwrap();
    let view = file
        .tensor(name)
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    let values = match view.dtype() {
        safetensors::Dtype::F32 => view
            .data()
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())))
            .collect(),
        safetensors::Dtype::F64 => view
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        other => panic!("fixture {name} has dtype {other:?}"),
    };
    (values, view.shape().to_vec())
}

pub fn has_fixture(name: &str) -> bool {
    let file = safetensors::SafeTensors::deserialize(FIXTURES).unwrap();
    file.tensor(name).is_ok()
}
