//! The scheduling priority of the SQLite store's own threads.
//!
//! sqlx runs each SQLite connection on a thread of its own. When the core is
//! saturated, the writer's commits and the WAL checkpoints share it with the
//! event loop that reads, acknowledges and delivers messages, and at equal
//! priority the kernel splits it evenly: the deliveries of one commit wait
//! behind the next commit, and a commit starts with only the few messages read
//! so far. A few nice levels lower, the store's threads leave the core to the
//! event loop whenever it has work and commit in the time left, so commits
//! gather more messages and the spread of delivery latency narrows (S4 on two
//! cores: p99 1.8–2.0× the mean at equal priority, 1.5–1.7× with this; see
//! docs/benchmarks.md). A core with time to spare runs both at once, so nothing
//! changes below saturation. Under systemd each service is its own scheduling
//! group, so this does not hand the core to other programs either.

/// How many nice levels below the process the writer and checkpoint threads run.
pub const BACKGROUND_NICE: i32 = 10;

/// Gives every thread of this process named `name` (as `/proc` shows it, at
/// most 15 bytes) a nice value [`BACKGROUND_NICE`] above the process's own.
/// Linux only: elsewhere nice values are not per thread, and nothing changes.
/// Never fails: a thread that cannot be reniced runs at the usual priority.
#[cfg(target_os = "linux")]
pub fn lower_priority_of(name: &str) {
    use rustix::process::{Pid, getpid, getpriority_process, setpriority_process};

    let nice = match getpriority_process(Some(getpid())) {
        Ok(own) => (own + BACKGROUND_NICE).min(19),
        Err(err) => {
            tracing::debug!(error = %err, "reading the process's nice value failed");
            return;
        }
    };
    let tasks = match std::fs::read_dir("/proc/self/task") {
        Ok(tasks) => tasks,
        Err(err) => {
            tracing::debug!(error = %err, "listing this process's threads failed");
            return;
        }
    };
    for task in tasks.flatten() {
        let named = std::fs::read_to_string(task.path().join("comm"))
            .is_ok_and(|comm| comm.trim_end() == name);
        if !named {
            continue;
        }
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|tid| tid.parse().ok())
            .and_then(Pid::from_raw)
        else {
            continue;
        };
        if let Err(err) = setpriority_process(Some(tid), nice) {
            tracing::debug!(error = %err, thread = name, "lowering a thread's priority failed");
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn lower_priority_of(_name: &str) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use rustix::process::{getpid, getpriority_process};
    use rustix::thread::gettid;

    #[test]
    fn lowers_only_the_named_threads() {
        let base = getpriority_process(Some(getpid())).unwrap();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let named = std::thread::Builder::new()
            .name("nice-test-bg".into())
            .spawn(move || {
                tid_tx.send(gettid()).unwrap();
                done_rx.recv().unwrap();
            })
            .unwrap();
        let background = tid_rx.recv().unwrap();

        lower_priority_of("nice-test-bg");

        assert_eq!(
            getpriority_process(Some(background)).unwrap(),
            (base + BACKGROUND_NICE).min(19)
        );
        assert_eq!(getpriority_process(Some(gettid())).unwrap(), base);
        done_tx.send(()).unwrap();
        named.join().unwrap();
    }
}
