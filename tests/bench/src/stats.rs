//! Latency samples, percentiles, and the one-line / JSON result every scenario case reports.

use std::time::Duration;

use serde_json::{json, Map, Value};

/// Latency samples in microseconds.
#[derive(Default, Clone, Debug)]
pub struct Samples {
    us: Vec<u64>,
}

impl Samples {
    pub fn with_capacity(n: usize) -> Samples {
        Samples { us: Vec::with_capacity(n) }
    }
    pub fn push(&mut self, d: Duration) {
        self.us.push(d.as_micros() as u64);
    }
    pub fn push_us(&mut self, us: u64) {
        self.us.push(us);
    }
    pub fn merge(&mut self, other: Samples) {
        self.us.extend(other.us);
    }
    /// p50, p99 and max in microseconds (sorts in place).
    pub fn summary(&mut self) -> Option<Percentiles> {
        if self.us.is_empty() {
            return None;
        }
        self.us.sort_unstable();
        let at = |q: f64| self.us[((self.us.len() - 1) as f64 * q).round() as usize];
        Some(Percentiles {
            p50: at(0.50),
            p99: at(0.99),
            max: *self.us.last().unwrap_or(&0),
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Percentiles {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

/// One measured case: a rate, optional latency, optional server cost, and whether it verified.
#[derive(Clone, Debug)]
pub struct BenchResult {
    pub name: String,
    /// Operations counted in `rate` (appends, reads, creates, deliveries, MB).
    pub ops: f64,
    pub secs: f64,
    /// What `rate` counts per second, e.g. "appends/s".
    pub unit: &'static str,
    pub latency: Option<Percentiles>,
    pub cpu_us_per_op: Option<f64>,
    /// CPU of the processes beneath the server (`--backend-pids`) per operation.
    pub backend_cpu_us_per_op: Option<f64>,
    /// Extra figures shown after the main ones (key, value).
    pub extra: Vec<(&'static str, Value)>,
    /// None when verification passed; the reason otherwise.
    pub failure: Option<String>,
}

impl BenchResult {
    pub fn new(name: impl Into<String>, ops: f64, elapsed: Duration, unit: &'static str) -> BenchResult {
        BenchResult {
            name: name.into(),
            ops,
            secs: elapsed.as_secs_f64(),
            unit,
            latency: None,
            cpu_us_per_op: None,
            backend_cpu_us_per_op: None,
            extra: Vec::new(),
            failure: None,
        }
    }

    /// A case that could not run at all.
    pub fn failed(name: impl Into<String>, unit: &'static str, why: impl Into<String>) -> BenchResult {
        let mut r = BenchResult::new(name, 0.0, Duration::ZERO, unit);
        r.failure = Some(why.into());
        r
    }

    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ops / self.secs
        } else {
            0.0
        }
    }

    pub fn with_extra(mut self, key: &'static str, v: impl Into<Value>) -> BenchResult {
        self.extra.push((key, v.into()));
        self
    }

    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    /// The human-readable result line.
    pub fn line(&self) -> String {
        let mut s = format!("{:<34} {:>12.1} {:<12}", self.name, self.rate(), self.unit);
        if let Some(l) = self.latency {
            s.push_str(&format!(" p50={} p99={} max={}", fmt_us(l.p50), fmt_us(l.p99), fmt_us(l.max)));
        }
        if let Some(c) = self.cpu_us_per_op {
            s.push_str(&format!(" cpu={c:.1}us/op"));
        }
        if let Some(c) = self.backend_cpu_us_per_op {
            s.push_str(&format!(" backend={c:.1}us/op"));
        }
        for (k, v) in &self.extra {
            s.push_str(&format!(" {k}={}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())));
        }
        match &self.failure {
            None => s.push_str(" [ok]"),
            Some(f) => s.push_str(&format!(" [FAILED: {f}]")),
        }
        s
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("ops".into(), json!(self.ops));
        m.insert("secs".into(), json!(self.secs));
        m.insert("rate".into(), json!(self.rate()));
        m.insert("unit".into(), json!(self.unit));
        if let Some(l) = self.latency {
            m.insert("p50_us".into(), json!(l.p50));
            m.insert("p99_us".into(), json!(l.p99));
            m.insert("max_us".into(), json!(l.max));
        }
        if let Some(c) = self.cpu_us_per_op {
            m.insert("cpu_us_per_op".into(), json!(c));
        }
        if let Some(c) = self.backend_cpu_us_per_op {
            m.insert("backend_cpu_us_per_op".into(), json!(c));
        }
        for (k, v) in &self.extra {
            m.insert((*k).into(), v.clone());
        }
        m.insert("ok".into(), json!(self.ok()));
        if let Some(f) = &self.failure {
            m.insert("error".into(), json!(f));
        }
        Value::Object(m)
    }
}

/// Rounds to one decimal place (figures reported as JSON numbers).
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Microseconds as a short human figure.
pub fn fmt_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else if us >= 1000 {
        format!("{:.2}ms", us as f64 / 1000.0)
    } else {
        format!("{us}us")
    }
}

/// FNV-1a 64-bit, used as the content checksum.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn update(&mut self, data: &[u8]) {
        let mut h = self.0;
        for &b in data {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s = Samples::default();
        for i in 1..=100 {
            s.push_us(i);
        }
        let p = s.summary().unwrap();
        assert_eq!((p.p50, p.p99, p.max), (51, 99, 100));
    }
}
