//! Unit tests of the PTX signature parser and the launch argument layout.

use super::*;

#[test]
fn every_kernel_has_a_ptx_signature() {
    let mut n = 0;
    for kf in KERNEL_FILES {
        let sigs = ptx_signatures(kf.ptx);
        for k in kf.kernels {
            let sig = sigs.get(*k).unwrap_or_else(|| panic!("{k} has no .entry in the PTX of {}", kf.file));
            assert!(!sig.is_empty(), "{k}: no parameters parsed");
            n += 1;
        }
    }
    assert!(n >= 40, "only {n} kernels");
    let conv = KERNEL_FILES.iter().find(|k| k.file.ends_with("conv.cu")).expect("conv.cu");
    assert_eq!(ptx_signatures(conv.ptx)["nsl_im2col"], vec![Param::Bytes(40), Param::Int64, Param::Int64]);
    let norm = KERNEL_FILES.iter().find(|k| k.file.ends_with("norm.cu")).expect("norm.cu");
    assert_eq!(
        ptx_signatures(norm.ptx)["nsl_bn_sq_partial"],
        [vec![Param::Int32; 3], vec![Param::F64], vec![Param::Int64; 3]].concat()
    );
    let gemm = KERNEL_FILES.iter().find(|k| k.file.ends_with("gemm.cu")).expect("gemm.cu");
    let g = &ptx_signatures(gemm.ptx)["nsl_gemm_tn"];
    assert_eq!(g[..5], [Param::Int32, Param::Int32, Param::Int32, Param::F32, Param::F32]);
    assert_eq!(g.len(), 13);
    assert_eq!(g[11..], [Param::Int32, Param::Int32]);
}
