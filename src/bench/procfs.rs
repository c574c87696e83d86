//! Memory and CPU of a process on this machine, from /proc: the server's
//! (`--server-pid`) and the generator's own, so a report shows which side
//! was the limit.

use std::time::Instant;

/// Clock ticks per second in /proc/<pid>/stat. Linux fixes USER_HZ at 100
/// for user space on every architecture, whatever the kernel's HZ.
const TICKS_PER_SECOND: f64 = 100.0;

/// One look at a process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// User + system CPU time so far, in clock ticks.
    pub cpu_ticks: u64,
}

/// `pid` is `None` for this process.
pub fn sample(pid: Option<u32>) -> anyhow::Result<Sample> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_string(),
    };
    let status = std::fs::read_to_string(format!("{dir}/status"))
        .map_err(|e| anyhow::anyhow!("cannot read {dir}/status: {e}"))?;
    let stat = std::fs::read_to_string(format!("{dir}/stat"))
        .map_err(|e| anyhow::anyhow!("cannot read {dir}/stat: {e}"))?;
    Ok(Sample {
        at: Instant::now(),
        rss_kib: parse_rss_kib(&status)
            .ok_or_else(|| anyhow::anyhow!("no VmRSS in {dir}/status"))?,
        cpu_ticks: parse_cpu_ticks(&stat)
            .ok_or_else(|| anyhow::anyhow!("unreadable {dir}/stat"))?,
    })
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime: fields 14 and 15, counted after the command name, which is
/// in parentheses and may itself contain spaces.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `after_name` starts at field 3 (state), so field n is at index n - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU used between two samples, in percent of one core.
pub fn cpu_percent(from: &Sample, to: &Sample) -> f64 {
    let wall = to.at.duration_since(from.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    let cpu = to.cpu_ticks.saturating_sub(from.cpu_ticks) as f64 / TICKS_PER_SECOND;
    cpu / wall * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let status = "Name:\tparley\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_kib(status), Some(12345));
        let stat = "4242 (par ley) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
    }

    #[test]
    fn samples_this_process() {
        let first = sample(None).unwrap();
        assert!(first.rss_kib > 0);
        let second = sample(None).unwrap();
        assert!(second.cpu_ticks >= first.cpu_ticks);
        assert!(cpu_percent(&first, &second) >= 0.0);
    }
}
