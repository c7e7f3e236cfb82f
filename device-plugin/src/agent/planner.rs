//! Which CNI process planned an attachment, and whether it still runs.
//!
//! Between Plan and Commit only the CNI that planned knows how far it got; the agent must not
//! restore a VF that CNI is still configuring (two writers on one VF leave settings behind), nor
//! keep forever a PLANNED record whose CNI died (the runtime's retry of that ADD would be
//! refused with "already exists"). The peer's pid comes from the Unix socket (`SO_PEERCRED`);
//! its start time tells a living CNI from an unrelated process that reused the pid.

use std::path::Path;

use sriov_proto::node::Planner;

/// The procfs of the agent's pid namespace (the CNI's pid is translated into it).
pub const PROC: &str = "/proc";

/// Whether the process that planned an attachment still runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannerLiveness {
    /// The same process (pid and start time) is still there.
    Running,
    /// It exited (the pid is free or names a process started later).
    Exited(String),
    /// Not recorded (a record from an older agent, a peer outside our pid namespace).
    Unknown,
}

/// The process `pid` as seen under `proc_root` (normally `/proc`), if it is there and its stat
/// line parses.
pub fn identify(proc_root: &Path, pid: u32) -> Option<Planner> {
    start_ticks(proc_root, pid).map(|start_ticks| Planner { pid, start_ticks })
}

/// Whether `planner` (as recorded at Plan) still runs under `proc_root`.
pub fn liveness(proc_root: &Path, planner: Option<&Planner>) -> PlannerLiveness {
    let Some(p) = planner.filter(|p| p.pid != 0) else {
        return PlannerLiveness::Unknown;
    };
    match start_ticks(proc_root, p.pid) {
        Some(t) if t == p.start_ticks => PlannerLiveness::Running,
        // No procfs to ask: cannot tell.
        None if !proc_root.join("self").exists() => PlannerLiveness::Unknown,
        // Gone, or the pid now names a process started later.
        Some(_) | None => PlannerLiveness::Exited(format!("its CNI (pid {}) exited", p.pid)),
    }
}

/// Field 22 of `/proc/<pid>/stat`. The command name (field 2) is parenthesised and may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn start_ticks(proc_root: &Path, pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (state); field 22 is the 20th after the name.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc(pid: u32, comm: &str, start: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("self")).unwrap();
        let d = dir.path().join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        let tail: Vec<String> = (3..=21).map(|i| i.to_string()).collect();
        std::fs::write(
            d.join("stat"),
            format!("{pid} ({comm}) {} {start} 23 24\n", tail.join(" ")),
        )
        .unwrap();
        dir
    }

    #[test]
    fn the_start_time_is_read_past_a_name_with_spaces_and_parentheses() {
        let proc = fake_proc(42, "sr iov) (x", 987654);
        assert_eq!(
            identify(proc.path(), 42),
            Some(Planner {
                pid: 42,
                start_ticks: 987654
            })
        );
    }

    #[test]
    fn a_reused_pid_or_a_missing_one_means_the_planner_exited() {
        let proc = fake_proc(42, "sriov", 100);
        let same = Planner {
            pid: 42,
            start_ticks: 100,
        };
        assert_eq!(liveness(proc.path(), Some(&same)), PlannerLiveness::Running);
        let older = Planner {
            start_ticks: 99,
            ..same
        };
        assert!(matches!(
            liveness(proc.path(), Some(&older)),
            PlannerLiveness::Exited(_)
        ));
        let gone = Planner { pid: 43, ..same };
        assert!(matches!(
            liveness(proc.path(), Some(&gone)),
            PlannerLiveness::Exited(_)
        ));
    }

    #[test]
    fn no_record_or_no_procfs_cannot_tell() {
        let proc = fake_proc(42, "sriov", 100);
        assert_eq!(liveness(proc.path(), None), PlannerLiveness::Unknown);
        let zero = Planner {
            pid: 0,
            start_ticks: 0,
        };
        assert_eq!(liveness(proc.path(), Some(&zero)), PlannerLiveness::Unknown);
        let empty = tempfile::tempdir().unwrap();
        let p = Planner {
            pid: 42,
            start_ticks: 100,
        };
        assert_eq!(liveness(empty.path(), Some(&p)), PlannerLiveness::Unknown);
    }

    #[test]
    fn this_process_is_running() {
        let me = std::process::id();
        let p = identify(Path::new("/proc"), me);
        assert!(p.is_some());
        assert_eq!(
            liveness(Path::new("/proc"), p.as_ref()),
            PlannerLiveness::Running
        );
    }
}
