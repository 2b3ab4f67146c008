use super::*;

fn err_name(e: &AkError) -> &'static str {
    match e {
        AkError::Shape { name, .. } | AkError::InvalidArgument { name, .. } => name,
        _ => "?",
    }
}

#[test]
fn flow_coefficients_check_shapes() {
    let w = [1.0, 2.0, 3.0];
    let y = Mat::<f64>::ones(3, 1);
    let v2 = Mat::<f64>::identity(2, 2);
    let e =
        ntk_flow_coefficients(&w, v2.as_ref(), y.as_ref(), &[1.0], 1.0, Par::Seq).unwrap_err();
    assert_eq!(err_name(&e), "eigenvectors", "{e}");
    let v32 = Mat::<f64>::zeros(3, 2);
    let e =
        ntk_flow_coefficients(&w, v32.as_ref(), y.as_ref(), &[1.0], 1.0, Par::Seq).unwrap_err();
    assert_eq!(err_name(&e), "eigenvectors", "{e}");
    let v3 = Mat::<f64>::identity(3, 3);
    let e = ntk_flow_coefficients(
        &w,
        v3.as_ref(),
        Mat::<f64>::ones(2, 1).as_ref(),
        &[1.0],
        1.0,
        Par::Seq,
    )
    .unwrap_err();
    assert_eq!(err_name(&e), "y", "{e}");
    let e = ntk_flow_coefficients(
        &[1.0, f64::NAN, 2.0],
        v3.as_ref(),
        y.as_ref(),
        &[1.0],
        1.0,
        Par::Seq,
    )
    .unwrap_err();
    assert_eq!(err_name(&e), "eigenvalues", "{e}");
    // unsorted eigenvalues with a clearly negative one are still rejected
    let e = ntk_flow_coefficients(
        &[3.0, -1.0, 2.0],
        v3.as_ref(),
        y.as_ref(),
        &[1.0],
        1.0,
        Par::Seq,
    )
    .unwrap_err();
    assert!(matches!(e, AkError::NotPositiveDefinite { .. }), "{e}");
    let c = ntk_flow_coefficients(
        &w,
        v3.as_ref(),
        y.as_ref(),
        &[0.0, f64::INFINITY],
        1.0,
        Par::Seq,
    )
    .unwrap();
    assert_eq!(c[0][(0, 0)], 0.0);
    assert!((c[1][(2, 0)] - 1.0 / 3.0).abs() < 1e-15);
}

#[test]
fn gp_predict_checks_shapes() {
    let l = Mat::<f64>::identity(3, 3);
    let alpha = Mat::<f64>::ones(3, 1);
    let kc = Mat::<f64>::ones(3, 4);
    let mut mean = Mat::<f64>::zeros(4, 1);
    let mut var = vec![0.0; 4];
    let kd = [1.0; 4];
    let run =
        |l: MatRef<'_, f64>,
         a: MatRef<'_, f64>,
         k: MatRef<'_, f64>,
         d: Option<&[f64]>,
         m: MatMut<'_, f64>,
         v: &mut [f64]| { gp_predict(l, a, k, d, m, Some(v), Par::Seq) };
    run(
        l.as_ref(),
        alpha.as_ref(),
        kc.as_ref(),
        Some(&kd),
        mean.as_mut(),
        &mut var,
    )
    .unwrap();
    assert_eq!(var, vec![0.0; 4]);
    let e = run(
        Mat::<f64>::zeros(3, 2).as_ref(),
        alpha.as_ref(),
        kc.as_ref(),
        Some(&kd),
        mean.as_mut(),
        &mut var,
    )
    .unwrap_err();
    assert_eq!(err_name(&e), "factor", "{e}");
    let e = run(
        l.as_ref(),
        Mat::<f64>::ones(2, 1).as_ref(),
        kc.as_ref(),
        Some(&kd),
        mean.as_mut(),
        &mut var,
    )
    .unwrap_err();
    assert_eq!(err_name(&e), "alpha", "{e}");
    let e = run(
        l.as_ref(),
        alpha.as_ref(),
        Mat::<f64>::ones(2, 4).as_ref(),
        Some(&kd),
        mean.as_mut(),
        &mut var,
    )
    .unwrap_err();
    assert_eq!(err_name(&e), "K_cross", "{e}");
    let e = run(
        l.as_ref(),
        alpha.as_ref(),
        kc.as_ref(),
        Some(&kd[..3]),
        mean.as_mut(),
        &mut var,
    )
    .unwrap_err();
    assert_eq!(err_name(&e), "k_test_diag", "{e}");
    let e = run(
        l.as_ref(),
        alpha.as_ref(),
        kc.as_ref(),
        Some(&[1.0, f64::NAN, 1.0, 1.0]),
        mean.as_mut(),
        &mut var,
    )
    .unwrap_err();
    assert_eq!(err_name(&e), "k_test_diag", "{e}");
    let mut sing = l.clone();
    sing[(2, 2)] = 0.0;
    let e = run(
        sing.as_ref(),
        alpha.as_ref(),
        kc.as_ref(),
        None,
        mean.as_mut(),
        &mut var,
    )
    .unwrap_err();
    assert_eq!(err_name(&e), "factor", "{e}");
}
