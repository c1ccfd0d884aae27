//! The process's own figures for `/metrics`, named as Prometheus client libraries' process
//! collectors name them, so that the usual dashboards and alerts apply: open and allowed
//! file descriptors, resident and virtual memory, CPU time, start time.
//!
//! Read from `/proc/self` at scrape time; elsewhere than Linux there is nothing to read,
//! and the families are left out.

use std::path::Path;

use rustix::process::{Resource, getrlimit};

/// The process's figures; each is `None` when it could not be read.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ProcessFigures {
    pub(crate) open_fds: Option<u64>,
    pub(crate) max_fds: Option<u64>,
    pub(crate) resident_memory_bytes: Option<u64>,
    pub(crate) virtual_memory_bytes: Option<u64>,
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) start_time_seconds: Option<f64>,
}

/// Reads the figures of this process.
pub(crate) fn read() -> ProcessFigures {
    let proc = Path::new("/proc");
    let status = std::fs::read_to_string(proc.join("self/status")).unwrap_or_default();
    let stat = std::fs::read_to_string(proc.join("self/stat")).unwrap_or_default();
    let system = std::fs::read_to_string(proc.join("stat")).unwrap_or_default();
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let times = stat_times(&stat);
    ProcessFigures {
        open_fds: std::fs::read_dir(proc.join("self/fd"))
            .ok()
            .map(|entries| entries.count() as u64),
        max_fds: getrlimit(Resource::Nofile).current,
        resident_memory_bytes: status_kib(&status, "VmRSS:").map(|kib| kib * 1024),
        virtual_memory_bytes: status_kib(&status, "VmSize:").map(|kib| kib * 1024),
        cpu_seconds: times.map(|t| (t.user + t.system) as f64 / ticks),
        start_time_seconds: times
            .zip(boot_time(&system))
            .map(|(t, boot)| boot as f64 + t.start as f64 / ticks),
    }
}

/// Clock ticks from `/proc/self/stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct StatTimes {
    user: u64,
    system: u64,
    /// Since the machine booted.
    start: u64,
}

/// `utime`, `stime` and `starttime` (fields 14, 15 and 22) of a `/proc/<pid>/stat` line.
/// The command name (field 2) is in parentheses and may hold spaces or parentheses, so
/// fields are counted after its last `)`.
fn stat_times(stat: &str) -> Option<StatTimes> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 is the first after the name.
    let field = |n: usize| after_name.split_whitespace().nth(n - 3)?.parse().ok();
    Some(StatTimes {
        user: field(14)?,
        system: field(15)?,
        start: field(22)?,
    })
}

/// The value in KiB of a `/proc/<pid>/status` line such as `VmRSS:  1924 kB`.
fn status_kib(status: &str, label: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(label))?;
    line[label.len()..].split_whitespace().next()?.parse().ok()
}

/// When the machine booted, in seconds since the Unix epoch (`btime` of `/proc/stat`).
fn boot_time(system: &str) -> Option<u64> {
    let line = system.lines().find(|line| line.starts_with("btime "))?;
    line["btime ".len()..].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name_whatever_it_holds() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 3 0 123456 1000000 500 18446744073709551615";
        assert_eq!(
            stat_times(stat),
            Some(StatTimes {
                user: 250,
                system: 75,
                start: 123456,
            })
        );
        assert_eq!(stat_times("garbage"), None);
    }

    #[test]
    fn status_and_boot_lines_are_read_by_label() {
        let status = "Name:\tchoreo\nVmSize:\t  3892 kB\nVmRSS:\t    1924 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1924));
        assert_eq!(status_kib(status, "VmSize:"), Some(3892));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        assert_eq!(boot_time("cpu 1 2 3\nbtime 1795802608\n"), Some(1795802608));
    }

    #[test]
    fn this_process_reads_as_running_with_files_open() {
        let figures = read();
        if cfg!(target_os = "linux") {
            assert!(
                figures.open_fds.is_some_and(|open| open >= 3),
                "{figures:?}"
            );
            assert!(figures.resident_memory_bytes.is_some_and(|rss| rss > 0));
            assert!(figures.cpu_seconds.is_some());
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            assert!(
                figures
                    .start_time_seconds
                    .is_some_and(|start| start <= now + 1.0 && start > now - 86_400.0 * 365.0),
                "{figures:?}"
            );
        }
    }
}
