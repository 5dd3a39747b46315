//! ℓ1 and orthogonality penalties: value and gradient against finite differences.

use nsl_core::{Param, Rng, Tensor};
use nsl_cpu::Cpu;

fn penalty(be: &Cpu, v: &[f32], l1: f32, orth: f32) -> (f64, Vec<f32>) {
    let mut p = Param::new(be, "w", nsl_core::Role::Weight, Tensor::from_vec(be, &[4, 3], v));
    p.l1 = l1;
    p.orthogonality = orth;
    let value = p.add_regularizer_grads(be) as f64;
    (value, p.grad.to_vec(be))
}

#[test]
fn l1_and_orthogonality_match_finite_differences() {
    let be = Cpu::new();
    let w = Rng::new(4).normal_vec(12, 0.7);
    for (l1, orth) in [(0.3, 0.0), (0.0, 0.8), (0.2, 0.5)] {
        let (_, grad) = penalty(&be, &w, l1, orth);
        for i in 0..12 {
            let eps = 1e-3;
            let mut plus = w.clone();
            plus[i] += eps;
            let mut minus = w.clone();
            minus[i] -= eps;
            let numeric = (penalty(&be, &plus, l1, orth).0 - penalty(&be, &minus, l1, orth).0) / (2.0 * eps as f64);
            assert!(
                (grad[i] as f64 - numeric).abs() < 2e-3 + 2e-2 * numeric.abs(),
                "l1={l1} orth={orth} i={i}: {} vs {numeric}",
                grad[i]
            );
        }
    }
}

#[test]
fn orthogonality_penalty_value_by_hand() {
    // W = [[1,0],[0,2]]: WᵀW − I = diag(0, 3); c/2·‖·‖² = 0.5·9·c.
    let be = Cpu::new();
    let mut p = Param::new(&be, "w", nsl_core::Role::Weight, Tensor::from_vec(&be, &[2, 2], &[1.0, 0.0, 0.0, 2.0]));
    p.orthogonality = 2.0;
    assert!((p.add_regularizer_grads(&be) - 9.0).abs() < 1e-6);
    // grad = 2c·W(WᵀW − I) = 4·[[0,0],[0,6]]
    assert_eq!(p.grad.to_vec(&be), vec![0.0, 0.0, 0.0, 24.0]);
}
