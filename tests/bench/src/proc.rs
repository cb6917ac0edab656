//! Server process sampling from /proc: CPU time (utime + stime) and resident memory (VmRSS).

use std::process::Command;

/// Clock ticks per second for /proc/<pid>/stat times (`getconf CLK_TCK`, normally 100).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

/// The server whose CPU and memory are sampled, if a pid was given.
#[derive(Clone, Copy, Debug)]
pub struct Server {
    pub pid: Option<u32>,
    pub ticks: u64,
    /// Processes beneath the server (a cluster's nodes), whose CPU is reported beside its own.
    pub backend: &'static [u32],
}

impl Server {
    pub fn new(pid: Option<u32>, backend: Vec<u32>) -> Server {
        Server {
            pid,
            ticks: clock_ticks(),
            backend: Vec::leak(backend),
        }
    }

    /// utime + stime of the process, in microseconds.
    pub fn cpu_micros(&self) -> Option<u64> {
        self.pid_cpu_micros(self.pid?)
    }

    /// utime + stime of every backend process, summed, in microseconds.
    pub fn backend_cpu_micros(&self) -> Option<u64> {
        if self.backend.is_empty() {
            return None;
        }
        self.backend.iter().map(|&p| self.pid_cpu_micros(p)).sum()
    }

    fn pid_cpu_micros(&self, pid: u32) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses: fields restart after the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After ')': field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) * 1_000_000 / self.ticks)
    }

    /// VmRSS in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.pid?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Starts a CPU measurement window.
    pub fn cpu_window(&self) -> CpuWindow {
        CpuWindow {
            server: *self,
            start: self.cpu_micros(),
            backend_start: self.backend_cpu_micros(),
        }
    }
}

/// CPU time used by the server between `Server::cpu_window` and `CpuWindow::per_op`.
pub struct CpuWindow {
    server: Server,
    start: Option<u64>,
    backend_start: Option<u64>,
}

impl CpuWindow {
    /// Server CPU microseconds per operation over the window (None without a pid).
    pub fn per_op(&self, ops: u64) -> Option<f64> {
        let end = self.server.cpu_micros()?;
        let used = end.checked_sub(self.start?)?;
        (ops > 0).then(|| used as f64 / ops as f64)
    }

    /// The backend processes' CPU microseconds per operation over the window (None without any).
    pub fn backend_per_op(&self, ops: u64) -> Option<f64> {
        let used = self.server.backend_cpu_micros()?.checked_sub(self.backend_start?)?;
        (ops > 0).then(|| used as f64 / ops as f64)
    }

    /// Total server CPU microseconds used over the window.
    pub fn total(&self) -> Option<u64> {
        self.server.cpu_micros()?.checked_sub(self.start?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let s = Server::new(Some(std::process::id()), vec![std::process::id()]);
        assert!(s.cpu_micros().is_some());
        assert!(s.rss_bytes().unwrap() > 0);
        assert!(s.backend_cpu_micros().is_some());
    }
}
