//! A parameter group as an optimizer sees it: `ArenaGroup`, ranges of an arena and what they
//! train with; and the `Segment`s that cover an arena with them, each a run of one group.

use std::ops::Range;

use super::GroupSettings;
use crate::error::{Error, Result};

/// A parameter group as an optimizer sees it: ranges of its arena (in elements) and what they
/// train with. A model's groups come from
/// [`ParamGroup::resolve`](super::ParamGroup::resolve); an application with its own arena
/// gives them to `CpuOptimizer::with_groups` or `GpuOptimizer::with_groups` directly (on
/// the GPU every range must start and end at a multiple of the device's storage offset
/// alignment, or at the arena's end).
#[derive(Clone, Debug, PartialEq)]
pub struct ArenaGroup {
    /// Element ranges of the arena (and of every state buffer) in the group.
    pub ranges: Vec<Range<usize>>,
    /// What they train with.
    pub settings: GroupSettings,
}

/// A run of the arena updated with one group's settings (`group` 0: the optimizer's own,
/// `i + 1`: the `i`-th [`ArenaGroup`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    pub range: Range<usize>,
    pub group: usize,
}

/// The segments of an arena of `len` elements: the groups' ranges, and the optimizer's own
/// settings (group 0) for the rest, in arena order, neighbours of one group merged. Fails on a
/// range that is empty, reaches past the arena or overlaps another.
pub(crate) fn segments(len: usize, groups: &[ArenaGroup]) -> Result<Vec<Segment>> {
    let op = "param groups";
    let mut ranges: Vec<(Range<usize>, usize)> = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        for r in &g.ranges {
            if r.start >= r.end || r.end > len {
                return Err(Error::Data {
                    op,
                    detail: format!(
                        "group {i}'s range {r:?} is empty or reaches past the arena's {len} \
                         elements"
                    ),
                });
            }
            ranges.push((r.clone(), i + 1));
        }
    }
    ranges.sort_by_key(|(r, _)| r.start);
    let mut segments: Vec<Segment> = Vec::new();
    let mut push = |range: Range<usize>, group: usize| match segments.last_mut() {
        Some(last) if last.group == group && last.range.end == range.start => {
            last.range.end = range.end;
        }
        _ => segments.push(Segment { range, group }),
    };
    let mut at = 0;
    for (range, group) in ranges {
        if range.start < at {
            return Err(Error::Data {
                op,
                detail: format!(
                    "group {}'s range {range:?} overlaps another group's (which ends at {at})",
                    group - 1
                ),
            });
        }
        if range.start > at {
            push(at..range.start, 0);
        }
        at = range.end;
        push(range, group);
    }
    if at < len {
        push(at..len, 0);
    }
    Ok(segments)
}

#[cfg(test)]
// Groups of one range are what these tests build, not a misspelt `vec![0; n]`.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    fn group(ranges: &[Range<usize>]) -> ArenaGroup {
        ArenaGroup {
            ranges: ranges.to_vec(),
            settings: GroupSettings::default(),
        }
    }

    #[test]
    fn segments_cover_the_arena_in_order_and_merge_neighbours() {
        let groups = [group(&[64..128, 192..256]), group(&[128..192])];
        let got = segments(300, &groups).unwrap();
        let want = [
            (0..64, 0),
            (64..128, 1),
            (128..192, 2),
            (192..256, 1),
            (256..300, 0),
        ];
        let want: Vec<Segment> = want
            .into_iter()
            .map(|(range, group)| Segment { range, group })
            .collect();
        assert_eq!(got, want);
        // Neighbouring ranges of one group become one segment.
        let got = segments(10, &[group(&[5..10, 0..5])]).unwrap();
        assert_eq!(
            got,
            vec![Segment {
                range: 0..10,
                group: 1
            }]
        );
        assert_eq!(
            segments(10, &[]).unwrap(),
            vec![Segment {
                range: 0..10,
                group: 0
            }]
        );
    }

    #[test]
    fn segments_refuse_overlaps_and_ranges_outside() {
        for groups in [
            vec![group(&[0..6]), group(&[5..8])],
            vec![group(&[0..6, 2..3])],
            vec![group(&[3..3])],
            vec![group(&[8..11])],
        ] {
            assert!(
                matches!(segments(10, &groups), Err(Error::Data { .. })),
                "{groups:?}"
            );
        }
    }
}
