//! PyTorch's strong-Wolfe line search for L-BFGS (`torch.optim.lbfgs._strong_wolfe`), over
//! any [`Line`]: the model's loss along the direction, or a function in a test.

use crate::error::Result;

/// PyTorch's `_strong_wolfe` as `LBFGS` calls it (c1 = 1e-4, c2 = 0.9, its own
/// `tolerance_change` of 1e-9, `max_ls` the evaluations the step has left): a bracketing phase
/// that extrapolates by cubic interpolation, then a zoom, each trial a directional evaluation
/// `f(x + t·d)`.
pub(super) struct StrongWolfe {
    pub max_ls: usize,
}

/// The step a line search accepted: its length, its loss, its gradient, and the evaluations
/// it made.
#[derive(Clone, Copy, Debug)]
pub(super) struct Found {
    pub t: f64,
    pub loss: f64,
    pub g: Gradient,
    pub evals: usize,
}

const C1: f64 = 1e-4;
const C2: f64 = 0.9;
/// The line search's `tolerance_change` (LBFGS leaves `_strong_wolfe`'s default).
const SEARCH_TOLERANCE_CHANGE: f64 = 1e-9;

/// What a line search evaluates: f along the direction, and the gradients it keeps.
pub(super) trait Line {
    /// `f(x + t·d)` and its derivative along `d`; the gradient there is [`Gradient::Last`]
    /// until the next call.
    fn along(&mut self, t: f64) -> Result<(f64, f64)>;

    /// `gradient` kept where none of `live` is (PyTorch's `g_new.clone()`); one already kept
    /// stays where it is.
    fn keep(&mut self, gradient: Gradient, live: &[Gradient]) -> Result<Gradient>;
}

/// Where a gradient the line search holds is: the one at its start (`flat`), the last
/// evaluation's (the model's gradient arena, until the next), or a copy in one of its arenas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Gradient {
    Start,
    Last,
    Kept(usize),
}

/// One end of a bracket: its step, loss, directional derivative and gradient.
#[derive(Clone, Copy, Debug)]
struct End {
    t: f64,
    f: f64,
    gtd: f64,
    g: Gradient,
}

impl StrongWolfe {
    /// From step `t` at the start's loss `f` and derivative `gtd` along a direction whose
    /// largest element is `d_norm`.
    pub fn search(
        &self,
        p: &mut impl Line,
        (t, f, gtd): (f64, f64, f64),
        d_norm: f64,
    ) -> Result<Found> {
        let armijo = |t: f64, f_new: f64| f_new > f + C1 * t * gtd;
        let mut t = t;
        let (mut f_new, mut gtd_new) = p.along(t)?;
        let mut evals = 1;
        let mut prev = End {
            t: 0.0,
            f,
            gtd,
            g: Gradient::Start,
        };
        let mut done = false;
        let mut ls_iter = 0;
        // The bracketing phase: ends [low side, high side] once found.
        let mut bracket: Option<[End; 2]> = None;
        while ls_iter < self.max_ls {
            let here = End {
                t,
                f: f_new,
                gtd: gtd_new,
                g: Gradient::Last,
            };
            // PyTorch's order: too high, then curvature met, then going up.
            let too_high = armijo(t, f_new) || (ls_iter > 1 && f_new >= prev.f);
            if !too_high && gtd_new.abs() <= -C2 * gtd {
                bracket = Some([here, here]);
                done = true;
                break;
            }
            if too_high || gtd_new >= 0.0 {
                let kept = p.keep(here.g, &[prev.g])?;
                bracket = Some([prev, End { g: kept, ..here }]);
                break;
            }
            let (min_step, max_step) = (t + 0.01 * (t - prev.t), t * 10.0);
            let next = cubic_interpolate(
                (prev.t, prev.f, prev.gtd),
                (t, f_new, gtd_new),
                Some((min_step, max_step)),
            );
            let kept = p.keep(Gradient::Last, &[])?;
            prev = End { g: kept, ..here };
            t = next;
            (f_new, gtd_new) = p.along(t)?;
            evals += 1;
            ls_iter += 1;
        }
        let mut bracket = match bracket {
            Some(found) if ls_iter < self.max_ls || done => found,
            // Out of trials (or none allowed): [0, t], as PyTorch's (its zoom does not run).
            _ => [
                End {
                    t: 0.0,
                    f,
                    gtd,
                    g: Gradient::Start,
                },
                End {
                    t,
                    f: f_new,
                    gtd: gtd_new,
                    g: Gradient::Last,
                },
            ],
        };
        let order = |b: &[End; 2]| if b[0].f <= b[1].f { (0, 1) } else { (1, 0) };
        let (mut low, mut high) = order(&bracket);
        let mut insufficient = false;
        // The zoom.
        while !done && ls_iter < self.max_ls {
            if (bracket[1].t - bracket[0].t).abs() * d_norm < SEARCH_TOLERANCE_CHANGE {
                break;
            }
            let [a, b] = bracket;
            t = cubic_interpolate((a.t, a.f, a.gtd), (b.t, b.f, b.gtd), None);
            let (lo, hi) = (a.t.min(b.t), a.t.max(b.t));
            let eps = 0.1 * (hi - lo);
            if (hi - t).min(t - lo) < eps {
                if insufficient || t >= hi || t <= lo {
                    t = if (t - hi).abs() < (t - lo).abs() {
                        hi - eps
                    } else {
                        lo + eps
                    };
                    insufficient = false;
                } else {
                    insufficient = true;
                }
            } else {
                insufficient = false;
            }
            (f_new, gtd_new) = p.along(t)?;
            evals += 1;
            ls_iter += 1;
            if armijo(t, f_new) || f_new >= bracket[low].f {
                let kept = p.keep(Gradient::Last, &[bracket[low].g])?;
                bracket[high] = End {
                    t,
                    f: f_new,
                    gtd: gtd_new,
                    g: kept,
                };
                (low, high) = order(&bracket);
            } else {
                if gtd_new.abs() <= -C2 * gtd {
                    done = true;
                } else if gtd_new * (bracket[high].t - bracket[low].t) >= 0.0 {
                    bracket[high] = bracket[low];
                }
                let kept = p.keep(Gradient::Last, &[bracket[high].g])?;
                bracket[low] = End {
                    t,
                    f: f_new,
                    gtd: gtd_new,
                    g: kept,
                };
            }
        }
        let best = bracket[low];
        Ok(Found {
            t: best.t,
            loss: best.f,
            g: best.g,
            evals,
        })
    }
}

/// PyTorch's `_cubic_interpolate`: the minimiser of the cubic through (x1, f1, g1) and
/// (x2, f2, g2), within `bounds` (by default the interval between them); their midpoint where
/// the cubic has none.
fn cubic_interpolate(
    (x1, f1, g1): (f64, f64, f64),
    (x2, f2, g2): (f64, f64, f64),
    bounds: Option<(f64, f64)>,
) -> f64 {
    let (lo, hi) = bounds.unwrap_or(if x1 <= x2 { (x1, x2) } else { (x2, x1) });
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let d2_square = d1 * d1 - g1 * g2;
    if d2_square >= 0.0 {
        let d2 = d2_square.sqrt();
        let min_pos = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        min_pos.max(lo).min(hi)
    } else {
        (lo + hi) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `F(z) = sin 3z + z²/10 + cos(7z)/2` along the unit descent direction from `x0`.
    struct Wiggly {
        x0: f64,
        d: f64,
    }

    fn f(z: f64) -> f64 {
        (3.0 * z).sin() + 0.1 * z * z + 0.5 * (7.0 * z).cos()
    }

    fn f_prime(z: f64) -> f64 {
        3.0 * (3.0 * z).cos() + 0.2 * z - 3.5 * (7.0 * z).sin()
    }

    impl Line for Wiggly {
        fn along(&mut self, t: f64) -> Result<(f64, f64)> {
            let z = self.x0 + t * self.d;
            Ok((f(z), f_prime(z) * self.d))
        }

        fn keep(&mut self, gradient: Gradient, _: &[Gradient]) -> Result<Gradient> {
            Ok(gradient)
        }
    }

    /// PyTorch's `torch.optim.lbfgs._strong_wolfe` (torch 2.15, float64) on `Wiggly`, from
    /// `x0` with a first trial `t0` and `max_ls` trials: the step it returns, its loss and
    /// its evaluations. The cases were picked from a sweep so that together they take every
    /// branch: out of trials, above the Armijo line, not below the previous trial, going up,
    /// the zoom's aliasing of the bracket's ends, and its insufficient-progress rule set and
    /// applied; then a first trial accepted at once and a search allowed no trial.
    const PYTORCH: [(f64, f64, usize, f64, f64, usize); 8] = [
        (-2.0, 0.01, 2, 0.2795762178986101, -0.49232925197856103, 3),
        (-2.0, 4.0, 25, 0.5881577740410742, 0.045627927347221264, 3),
        (-1.794, 0.01, 25, 0.5755363567002533, -0.4924061716612673, 5),
        (-1.794, 4.0, 25, 0.5688984466699841, -0.49943395782484745, 4),
        (
            -0.455,
            4.0,
            25,
            0.011066066883413592,
            -1.4597721924120226,
            4,
        ),
        (1.811, 0.01, 25, 0.4098782082683262, -1.1406664291904933, 4),
        (1.7, 4.0, 25, 4.0, -0.5115061644247649, 1),
        (0.0, 1.0, 0, 1.0, 0.3358311191117851, 1),
    ];

    #[test]
    fn the_line_search_is_pytorchs() {
        for (x0, t0, max_ls, t, loss, evals) in PYTORCH {
            let d = -f_prime(x0).signum();
            let mut line = Wiggly { x0, d };
            let found = StrongWolfe { max_ls }
                .search(&mut line, (t0, f(x0), f_prime(x0) * d), 1.0)
                .unwrap();
            let what = format!("x0 {x0}, t0 {t0}, max_ls {max_ls}: {found:?}");
            assert!(
                (found.t - t).abs() <= 1e-12 * t.abs().max(1.0),
                "{what}, t {t}"
            );
            assert!((found.loss - loss).abs() <= 1e-12, "{what}, loss {loss}");
            assert_eq!(found.evals, evals, "{what}");
        }
    }

    #[test]
    fn the_cubic_is_minimised_within_its_bounds() {
        // f = (x − 1)²: the cubic through (0, 1, −2) and (3, 4, 4) is that parabola.
        assert!((cubic_interpolate((0.0, 1.0, -2.0), (3.0, 4.0, 4.0), None) - 1.0).abs() < 1e-12);
        assert_eq!(
            cubic_interpolate((0.0, 1.0, -2.0), (3.0, 4.0, 4.0), Some((2.0, 5.0))),
            2.0
        );
        // Rising at both ends with a slope between them under theirs: no real minimiser,
        // the middle of the bounds.
        assert_eq!(
            cubic_interpolate((0.0, 0.0, 1.0), (1.0, 2.0 / 3.0, 1.0), None),
            0.5
        );
    }
}
