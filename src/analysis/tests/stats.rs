//! The Mann-Whitney U test against published critical values and known exact probabilities, its
//! tie handling, and properties that any correct U test has.

use proptest::prelude::{ProptestConfig, prop, prop_assert, prop_assert_eq, proptest};
use proptest::strategy::Strategy;

use crate::analysis::stats::{EXACT_MAX_N, mann_whitney, median, relative_effect};

/// `n1` values 0, 1, … and `n2` values placed so that U of the first sample is exactly `u` (no
/// ties): each of the first `u` pairs of the second sample is pushed below one first-sample value.
fn with_u(n1: usize, n2: usize, u: usize) -> (Vec<f64>, Vec<f64>) {
    assert!(u <= n1 * n2);
    // Start with every b above every a (U1 = 0), then move b values down past a values one
    // crossing at a time; each crossing adds one to U1.
    let a: Vec<f64> = (0..n1).map(|i| (i * 10) as f64).collect();
    let mut crossings = vec![0usize; n2];
    let mut left = u;
    for c in crossings.iter_mut() {
        let take = left.min(n1);
        *c = take;
        left -= take;
    }
    let b = crossings
        .iter()
        .enumerate()
        // Below `c` a values means just above a[n1 - c - 1] (or below everything when c = n1).
        .map(|(j, &c)| {
            let base = if c == n1 {
                -10.0
            } else {
                ((n1 - c - 1) * 10) as f64
            };
            base + 1.0 + j as f64 * 0.001
        })
        .collect();
    (a, b)
}

/// Lower critical values of U for a two-tailed test at α = 0.05: reject when U ≤ the value.
/// From the standard table "Critical values of the Mann-Whitney U (two-tailed, p = 0.05)" as
/// printed in Siegel & Castellan, Nonparametric Statistics for the Behavioral Sciences (2nd ed.,
/// 1988), Table J, and reproduced e.g. by numeracy-bank.net ("if α = 0.05, n1 = 20 and n2 = 20,
/// then Ucritical = 127").
const CRITICAL_05: &[(usize, usize, usize)] = &[
    (5, 5, 2),
    (5, 10, 8),
    (5, 20, 20),
    (6, 12, 14),
    (7, 20, 34),
    (8, 8, 13),
    (10, 10, 23),
    (12, 12, 37),
    (13, 16, 59),
    (15, 15, 64),
    (20, 20, 127),
];

#[test]
fn exact_p_values_reproduce_the_published_critical_values() {
    for &(n1, n2, crit) in CRITICAL_05 {
        let (a, b) = with_u(n1, n2, crit);
        let at = mann_whitney(&a, &b).unwrap();
        assert_eq!(at.u1.min(at.u2), crit as f64, "({n1}, {n2})");
        assert!(at.exact, "({n1}, {n2}) is within the exact range");
        assert!(
            at.p_value <= 0.05,
            "({n1}, {n2}) U={crit}: p={}",
            at.p_value
        );
        let (a, b) = with_u(n1, n2, crit + 1);
        let above = mann_whitney(&a, &b).unwrap();
        assert!(
            above.p_value > 0.05,
            "({n1}, {n2}) U={}: p={}",
            crit + 1,
            above.p_value
        );
    }
}

#[test]
fn exact_tail_probabilities_are_counts_of_arrangements() {
    // n1 = n2 = 3, complete separation: 1 of C(6,3) = 20 arrangements per tail.
    let r = mann_whitney(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
    assert_eq!((r.u1, r.u2), (0.0, 9.0));
    assert!((r.p_value - 2.0 / 20.0).abs() < 1e-12);
    // n1 = n2 = 4: 1 of C(8,4) = 70.
    let r = mann_whitney(&[5.0, 6.0, 7.0, 8.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(r.u1, 16.0);
    assert!((r.p_value - 2.0 / 70.0).abs() < 1e-12);
    // n1 = n2 = 4, U = 1: 2 of 70 at or below.
    let (a, b) = with_u(4, 4, 1);
    assert!((mann_whitney(&a, &b).unwrap().p_value - 4.0 / 70.0).abs() < 1e-12);
}

#[test]
fn ties_use_midranks_and_the_normal_approximation() {
    let a = [1.0, 2.0, 2.0, 3.0, 4.0];
    let b = [2.0, 3.0, 3.0, 5.0, 6.0];
    let r = mann_whitney(&a, &b).unwrap();
    // Pairs a > b: 3>2 (1), 4>2, 4>3, 4>3 (3) = 4; ties count ½: 2=2 twice (1), 3=3 twice (1).
    assert_eq!(r.u1, 6.0);
    assert_eq!(r.u1 + r.u2, 25.0);
    assert!(!r.exact, "ties leave the exact distribution");
    // Two groups of three tied values (2, 2, 2 and 3, 3, 3): Σ(t³ − t) = 48, so
    // z = (|6 − 12.5| − 0.5) / sqrt(25/12 · (11 − 48/90)) = 1.2849, two-sided p = 0.1988
    // (standard normal table: 2 · (1 − Φ(1.28)) ≈ 0.2005, Φ(1.29) ≈ 0.1971).
    assert!((r.p_value - 0.1988).abs() < 1e-3, "{}", r.p_value);
}

#[test]
fn large_samples_use_the_normal_approximation_close_to_the_exact_value() {
    // n1 = n2 = 20 at U = 127 is exact p ≈ 0.0489 (just under 0.05); n = 21 switches to normal.
    let (a, b) = with_u(EXACT_MAX_N + 1, EXACT_MAX_N + 1, 140);
    let r = mann_whitney(&a, &b).unwrap();
    assert!(!r.exact);
    // mean 220.5, sd sqrt(21*21*43/12) = 39.75; z = (80.5 - 0.5)/39.75 = 2.0126 → p = 0.0442.
    assert!((r.p_value - 0.0442).abs() < 1e-3, "{}", r.p_value);
}

#[test]
fn identical_samples_show_no_difference() {
    let x = [3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0];
    let r = mann_whitney(&x, &x).unwrap();
    assert_eq!(r.u1, r.u2);
    assert!(r.p_value > 0.99, "{}", r.p_value);
    let same = [7.0; 12];
    assert_eq!(mann_whitney(&same, &same).unwrap().p_value, 1.0);
    assert_eq!(
        relative_effect(median(&x).unwrap(), median(&x).unwrap()),
        0.0
    );
}

#[test]
fn shifted_samples_show_a_difference() {
    let base: Vec<f64> = (0..15).map(|i| 100.0 + (i * 7 % 11) as f64).collect();
    let worse: Vec<f64> = base.iter().map(|x| x * 1.15).collect();
    let r = mann_whitney(&worse, &base).unwrap();
    assert!(r.p_value < 0.01, "{}", r.p_value);
    let effect = relative_effect(median(&worse).unwrap(), median(&base).unwrap());
    assert!((effect - 0.15).abs() < 1e-9, "{effect}");
}

#[test]
fn medians_and_effects() {
    assert_eq!(median(&[]), None);
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    assert_eq!(relative_effect(110.0, 100.0), 0.1);
    assert!((relative_effect(90.0, 100.0) + 0.1).abs() < 1e-12);
    assert_eq!(relative_effect(0.5, 0.0), 1.0);
    assert_eq!(relative_effect(-0.5, 0.0), -1.0);
    assert_eq!(relative_effect(0.0, 0.0), 0.0);
    assert!(mann_whitney(&[], &[1.0]).is_none());
}

fn sample() -> impl Strategy<Value = Vec<f64>> {
    // Small integers: ties are frequent, and the monotone maps below are exact on them.
    prop::collection::vec((-40i32..40).prop_map(f64::from), 1..30)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn u_sums_to_n1_n2_and_p_is_a_probability(a in sample(), b in sample()) {
        let r = mann_whitney(&a, &b).unwrap();
        prop_assert_eq!(r.u1 + r.u2, (a.len() * b.len()) as f64);
        prop_assert!(r.u1 >= 0.0 && r.u2 >= 0.0);
        prop_assert!((0.0..=1.0).contains(&r.p_value), "p = {}", r.p_value);
    }

    #[test]
    fn swapping_the_samples_swaps_u_and_keeps_p(a in sample(), b in sample()) {
        let ab = mann_whitney(&a, &b).unwrap();
        let ba = mann_whitney(&b, &a).unwrap();
        prop_assert_eq!(ab.u1, ba.u2);
        prop_assert_eq!(ab.u2, ba.u1);
        prop_assert!((ab.p_value - ba.p_value).abs() < 1e-12);
    }

    #[test]
    fn monotone_transforms_change_nothing(a in sample(), b in sample()) {
        let r = mann_whitney(&a, &b).unwrap();
        for f in [|x: f64| x * x * x + 5.0, |x: f64| (x / 8.0).exp(), |x: f64| 3.0 * x - 100.0] {
            let fa: Vec<f64> = a.iter().map(|&x| f(x)).collect();
            let fb: Vec<f64> = b.iter().map(|&x| f(x)).collect();
            let t = mann_whitney(&fa, &fb).unwrap();
            prop_assert_eq!((t.u1, t.u2, t.exact), (r.u1, r.u2, r.exact));
            prop_assert!((t.p_value - r.p_value).abs() < 1e-12);
        }
    }
}
