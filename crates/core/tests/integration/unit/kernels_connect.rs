//! Tests of `dualstream_core::kernels::connect`.
#[allow(unused_imports)]
use self::scope::*;

/// The names the tests of `kernels::connect` see in their module.
mod scope {
    #![allow(unused_imports)]
    pub use dualstream_core::kernels::connect::*;
    pub use dualstream_core::spec::Connect;
    pub use rayon::prelude::*;
}
#[test]
fn spike_functions_match_truth_tables_and_partials_match_differences() {
    let all = [Connect::Add, Connect::And, Connect::Iand, Connect::Or, Connect::Xor];
    let table = |g: Connect, s: u8, o: u8| -> f32 {
        match g {
            Connect::Add => (s + o) as f32,
            Connect::And => (s & o) as f32,
            Connect::Iand => ((1 - s) & o) as f32,
            Connect::Or => (s | o) as f32,
            Connect::Xor => (s ^ o) as f32,
        }
    };
    for g in all {
        for s in 0..2u8 {
            for o in 0..2u8 {
                assert_eq!(g.apply(s as f32, o as f32), table(g, s, o), "{g:?}({s},{o})");
            }
        }
        // The formulas are polynomials, so the partials hold at non-binary points too.
        for &(s, o) in &[(0.3f32, 0.8f32), (1.0, 0.0), (0.5, 0.5)] {
            let h = 1e-3;
            let ds = (g.apply(s + h, o) - g.apply(s - h, o)) / (2.0 * h);
            let dn = (g.apply(s, o + h) - g.apply(s, o - h)) / (2.0 * h);
            let (ps, po) = g.partials(s, o);
            assert!((ds - ps).abs() < 1e-3 && (dn - po).abs() < 1e-3, "{g:?} at ({s},{o})");
        }
    }
    assert!(!Connect::Add.keeps_spikes() && Connect::Iand.keeps_spikes());
}

#[test]
fn forward_returns_the_exact_spike_count_of_its_output() {
    // Several chunks plus a ragged tail; spikes at pseudo-random places.
    let n = 3 * CHUNK + 1234;
    let s: Vec<f32> = (0..n).map(|i| ((i * 7919) % 5 == 0) as u8 as f32).collect();
    let o: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 3 == 0) as u8 as f32).collect();
    let a: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
    for g in [Connect::Add, Connect::And, Connect::Iand, Connect::Or, Connect::Xor] {
        let mut out = vec![f32::NAN; n];
        let sum = connect_forward(g, &s, &o, &mut out, None);
        let want: f64 = (0..n).map(|i| g.apply(s[i], o[i]) as f64).sum();
        assert_eq!(sum, want, "{g:?}");
        assert!(out.iter().zip(s.iter().zip(&o)).all(|(&y, (&a, &b))| y == g.apply(a, b)));
        // With the accumulation stream: the same join and sum, and A' = A + S.
        let (mut joined, mut a_out) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        assert_eq!(
            connect_forward(g, &s, &o, &mut joined, Some((&a, &mut a_out))),
            want,
            "{g:?} accumulating"
        );
        assert_eq!(joined, out, "{g:?} accumulating");
        assert!((0..n).all(|i| a_out[i] == a[i] + s[i]), "{g:?} A'");
    }
}

#[test]
fn forward_in_place_writes_and_sums_what_the_three_buffer_forward_does() {
    // Real values (not only spike counts, whose sums are exact in any order), several chunks
    // and a ragged tail: the same bits and the same sum.
    let n = 3 * CHUNK + 1237;
    let s: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1013) as f32 * 0.0137 - 3.1).collect();
    let o: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 997) as f32 * 0.0091 - 2.7).collect();
    for g in [Connect::Add, Connect::And, Connect::Iand, Connect::Or, Connect::Xor] {
        let mut out = vec![f32::NAN; n];
        let want = connect_forward(g, &s, &o, &mut out, None);
        let mut in_place = s.clone();
        let sum = connect_forward_in_place(g, &mut in_place, &o);
        assert_eq!(sum.to_bits(), want.to_bits(), "{g:?}: sum");
        assert!(in_place.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()), "{g:?}");
    }
}

#[test]
fn backward_kernels_apply_the_partials_of_each_connect_function() {
    let n = 2 * CHUNK + 517;
    let s: Vec<f32> = (0..n).map(|i| ((i * 7919) % 5 == 0) as u8 as f32).collect();
    let o: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 3 == 0) as u8 as f32).collect();
    let grad: Vec<f32> = (0..n).map(|i| ((i % 101) as f32 - 50.0) * 0.01).collect();
    let also: Vec<f32> = (0..n).map(|i| ((i % 37) as f32 - 18.0) * 0.003).collect();
    let squares_of = |x: &[f32]| -> f64 { x.iter().map(|&v| v as f64 * v as f64).sum() };
    let (want, want_also) = (squares_of(&grad), squares_of(&also));
    for g in [Connect::Add, Connect::And, Connect::Iand, Connect::Or, Connect::Xor] {
        let (mut gs, mut go) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        connect_backward(g, &s, &o, &grad, &mut gs, &mut go);
        let mut gs_alone = vec![f32::NAN; n];
        let (squares, none) = connect_backward_s(g, &s, &o, &grad, None, &mut gs_alone);
        assert!(
            (squares - want).abs() <= 1e-12 * want && none == 0.0,
            "{g:?} sum of squares {squares} vs {want}"
        );
        let mut gs_also = vec![f32::NAN; n];
        let (squares, squares_also) =
            connect_backward_s(g, &s, &o, &grad, Some(&also), &mut gs_also);
        assert!(
            (squares - want).abs() <= 1e-12 * want,
            "{g:?} sum of squares with also {squares} vs {want}"
        );
        assert!(
            (squares_also - want_also).abs() <= 1e-12 * want_also,
            "{g:?} also's squares {squares_also} vs {want_also}"
        );
        let start: Vec<f32> = (0..n).map(|i| i as f32 * 1e-3).collect();
        let (mut acc, mut acc_also) = (start.clone(), start.clone());
        connect_backward_add_o(g, &s, &o, &grad, None, &mut acc);
        connect_backward_add_o(g, &s, &o, &grad, Some(&also), &mut acc_also);
        for i in 0..n {
            let (ps, po) = g.partials(s[i], o[i]);
            assert_eq!(gs[i], grad[i] * ps, "{g:?} dS at {i}");
            assert_eq!(gs_alone[i], gs[i], "{g:?} dS alone at {i}");
            assert_eq!(gs_also[i], gs[i] + also[i], "{g:?} dS + also at {i}");
            assert_eq!(go[i], grad[i] * po, "{g:?} dO at {i}");
            assert_eq!(acc[i], start[i] + grad[i] * po, "{g:?} added dO at {i}");
            assert_eq!(acc_also[i], acc[i] + also[i], "{g:?} added dO and also at {i}");
        }
    }
}
