//! Work submitted and not yet seen to finish, and the bound on it. wgpu lets a host that runs
//! ahead of the GPU submit without limit: each submission in flight holds a command pool, its
//! recorded commands and wgpu's tracking of what it uses until the GPU is done with it, so a
//! long epoch of steps that the GPU runs slower than the host records would grow them without
//! end. CUDA blocks a launch once about a thousand kernels are queued; a flush here does the
//! like once more than [`crate::GpuOptions::max_dispatches_in_flight`] dispatches are in
//! flight (see [`oldest_to_wait_for`]).

use std::collections::VecDeque;

/// Submissions since the host last knew the GPU had caught up, oldest first.
#[derive(Default)]
pub(crate) struct InFlight {
    /// (serial, submission, dispatches it carried).
    submissions: VecDeque<(u64, wgpu::SubmissionIndex, u64)>,
    /// Dispatches in `submissions`.
    dispatches: u64,
    /// The next submission's serial.
    next_serial: u64,
    /// The context's dispatch count at the last submit: what a submit carried is the
    /// difference.
    counted: u64,
}

impl InFlight {
    /// Notes a submission made when the context had counted `dispatches_so_far` dispatches.
    pub fn submitted(&mut self, index: wgpu::SubmissionIndex, dispatches_so_far: u64) {
        let carried = dispatches_so_far.saturating_sub(self.counted);
        self.counted = dispatches_so_far;
        self.push(index, carried);
    }

    fn push(&mut self, index: wgpu::SubmissionIndex, carried: u64) {
        self.submissions
            .push_back((self.next_serial, index, carried));
        self.next_serial += 1;
        self.dispatches = self.dispatches.saturating_add(carried);
    }

    /// The submission to wait for, and its serial, when more than `limit` dispatches are in
    /// flight (see [`oldest_to_wait_for`]).
    pub fn over(&self, limit: u64) -> Option<(u64, wgpu::SubmissionIndex)> {
        let count = oldest_to_wait_for(
            self.submissions.iter().map(|&(_, _, d)| d),
            self.dispatches,
            limit,
        );
        let (serial, index, _) = self.submissions.get(count.checked_sub(1)?)?;
        Some((*serial, index.clone()))
    }

    /// Notes a submission that carried no dispatch (a readback's copy), so that a wait sees
    /// it as the latest.
    pub fn submitted_copy(&mut self, index: wgpu::SubmissionIndex) {
        self.push(index, 0);
    }

    /// The latest submission in flight, if any: its serial and index.
    pub fn last(&self) -> Option<(u64, wgpu::SubmissionIndex)> {
        self.submissions
            .back()
            .map(|(serial, index, _)| (*serial, index.clone()))
    }

    /// Forgets the submissions up to and including `serial`: the GPU has finished them.
    pub fn finished_through(&mut self, serial: u64) {
        while let Some(&(s, _, d)) = self.submissions.front() {
            if s > serial {
                break;
            }
            self.dispatches = self.dispatches.saturating_sub(d);
            self.submissions.pop_front();
        }
    }
}

/// How many of the oldest submissions in flight (each `dispatches`, oldest first, `total` in
/// all) a flush waits for: none while at most `limit` dispatches are in flight; else the
/// fewest that leave at most `limit / 2`, so the GPU still has half the bound queued when the
/// host goes on and a throttled loop waits once per `limit / 2` dispatches, not at every step.
/// The newest submission is never waited for (a step of more than `limit` dispatches keeps
/// one step queued, not none).
pub(crate) fn oldest_to_wait_for(
    dispatches: impl ExactSizeIterator<Item = u64>,
    total: u64,
    limit: u64,
) -> usize {
    if total <= limit {
        return 0;
    }
    let older = dispatches.len().saturating_sub(1);
    let mut left = total;
    let mut count = 0;
    for d in dispatches.take(older) {
        if left <= limit / 2 {
            break;
        }
        left = left.saturating_sub(d);
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::oldest_to_wait_for;

    fn wait_for(dispatches: &[u64], limit: u64) -> usize {
        oldest_to_wait_for(dispatches.iter().copied(), dispatches.iter().sum(), limit)
    }

    #[test]
    fn nothing_is_waited_for_within_the_bound() {
        assert_eq!(wait_for(&[], 0), 0);
        assert_eq!(wait_for(&[9; 113], 1024), 0); // 1 017 dispatches
        assert_eq!(wait_for(&[1024], 1024), 0);
    }

    #[test]
    fn past_the_bound_the_oldest_go_until_half_is_left() {
        // 1 026 in flight: 57 steps of 9 leave 513, the 58th leaves 504 ≤ 512.
        assert_eq!(wait_for(&[9; 114], 1024), 58);
        assert_eq!(wait_for(&[9, 9, 9], 20), 2);
        assert_eq!(wait_for(&[5, 30, 1], 20), 2);
        assert_eq!(wait_for(&[30, 1], 20), 1);
    }

    #[test]
    fn the_newest_submission_is_never_waited_for() {
        assert_eq!(wait_for(&[5000], 1024), 0);
        assert_eq!(wait_for(&[5000, 5000], 1024), 1);
        assert_eq!(wait_for(&[1, 1, 5000], 1024), 2);
        // A bound of 0: at most one submission in flight.
        assert_eq!(wait_for(&[3, 3, 3], 0), 2);
        assert_eq!(wait_for(&[3], 0), 0);
    }
}
