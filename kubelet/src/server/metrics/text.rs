//! A small writer of the Prometheus text format 0.0.4 for the endpoints
//! whose samples carry their own timestamps (`/metrics/resource` and
//! `/metrics/cadvisor`).
//!
//! Why not `prometheus-client`: its metric types and encoder have no way to
//! give a sample a timestamp, and the Go kubelet stamps each of these
//! samples with the time its stats were read (metrics-server and Prometheus
//! use it to compute rates). Those endpoints are built afresh from the
//! stats summary on every scrape, so they need none of the crate's
//! registered, mutable metrics either.
//!
//! The output follows Go's `expfmt` as the kubelet writes it: families in
//! name order, samples of a family in label-value order, label names
//! sorted, values formatted as Go's `strconv.FormatFloat(v, 'g', -1, 64)`,
//! timestamps in milliseconds since the epoch, and families without
//! samples left out.

use std::fmt::Write;

/// A family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One sample: labels (names sorted), value, optional timestamp in ms.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// A metric family being collected.
#[derive(Clone, Debug)]
pub struct Family {
    pub name: &'static str,
    /// The HELP text as written (with the stability prefix, if any).
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

impl Family {
    pub fn new(name: &'static str, help: &'static str, kind: Kind) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a sample; `labels` are sorted by name here.
    pub fn push(
        &mut self,
        mut labels: Vec<(&'static str, String)>,
        value: f64,
        timestamp_ms: Option<i64>,
    ) {
        labels.sort_by(|a, b| a.0.cmp(b.0));
        self.samples.push(Sample {
            labels,
            value,
            timestamp_ms,
        });
    }
}

/// Writes `families` (sorted, empty ones skipped) as text format 0.0.4.
pub fn render(mut families: Vec<Family>) -> String {
    families.sort_by(|a, b| a.name.cmp(b.name));
    let lines: usize = families.iter().map(|f| f.samples.len() + 2).sum();
    let mut out = String::with_capacity(lines * 96);
    for mut f in families {
        if f.samples.is_empty() {
            continue;
        }
        f.samples.sort_by(|a, b| {
            let values = a.labels.iter().map(|l| &l.1);
            values
                .cmp(b.labels.iter().map(|l| &l.1))
                .then(a.timestamp_ms.cmp(&b.timestamp_ms))
        });
        out.push_str("# HELP ");
        out.push_str(f.name);
        out.push(' ');
        escape_help(f.help, &mut out);
        out.push_str("\n# TYPE ");
        out.push_str(f.name);
        out.push(' ');
        out.push_str(f.kind.as_str());
        out.push('\n');
        for s in &f.samples {
            write_sample(&mut out, f.name, s);
        }
    }
    out
}

fn write_sample(out: &mut String, name: &str, s: &Sample) {
    out.push_str(name);
    if !s.labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in s.labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            escape_label_value(v, out);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    go_float(s.value, out);
    if let Some(ts) = s.timestamp_ms {
        let _ = write!(out, " {ts}");
    }
    out.push('\n');
}

/// A label value: `\`, `"` and newline escaped, as the format requires.
pub fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A HELP text: `\` and newline escaped (quotes stay as they are).
fn escape_help(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `v` as Go's `expfmt` writes it: the shortest digits that read back as
/// `v`, in exponent form (`1.5e+09`, `1e-05`) when the decimal exponent is
/// under -4 or at least 6, `+Inf`, `-Inf` and `NaN` spelled out.
pub fn go_float(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if v == 0.0 {
        out.push('0');
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "1.5e9".
    let e = format!("{v:e}");
    let (mantissa, exp) = match e.split_once('e') {
        Some((m, x)) => (m, x.parse::<i32>().unwrap_or(0)),
        None => (e.as_str(), 0),
    };
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "{mantissa}e{sign}{:02}", exp.unsigned_abs());
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut s = String::new();
        go_float(v, &mut s);
        s
    }

    #[test]
    fn floats_are_written_as_go_writes_them() {
        assert_eq!(f(0.0), "0");
        assert_eq!(f(-0.0), "0");
        assert_eq!(f(1.0), "1");
        assert_eq!(f(-1.0), "-1");
        assert_eq!(f(0.5), "0.5");
        assert_eq!(f(123456.0), "123456");
        assert_eq!(f(999999.5), "999999.5");
        assert_eq!(f(1e6), "1e+06");
        assert_eq!(f(1_234_567.0), "1.234567e+06");
        assert_eq!(f(1.7e9 + 0.25), "1.70000000025e+09");
        assert_eq!(f(12.345678901), "12.345678901");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(0.00001), "1e-05");
        assert_eq!(f(1e100), "1e+100");
        assert_eq!(f(f64::INFINITY), "+Inf");
        assert_eq!(f(f64::NEG_INFINITY), "-Inf");
        assert_eq!(f(f64::NAN), "NaN");
        // Large byte counts, as in memory gauges.
        assert_eq!(f(52_428_800.0), "5.24288e+07");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        escape_label_value("a\\b\"c\nd", &mut s);
        assert_eq!(s, r#"a\\b\"c\nd"#);
        let mut fam = Family::new("m", "help with \\ and\nnewline \"q\"", Kind::Gauge);
        fam.push(vec![("z", "x\"y".into()), ("a", "\n".into())], 2.0, Some(5));
        assert_eq!(
            render(vec![fam]),
            "# HELP m help with \\\\ and\\nnewline \"q\"\n# TYPE m gauge\nm{a=\"\\n\",z=\"x\\\"y\"} 2 5\n"
        );
    }

    #[test]
    fn families_and_samples_are_sorted_and_empty_families_skipped() {
        let mut b = Family::new("b", "B", Kind::Counter);
        b.push(vec![("pod", "q".into())], 1.0, None);
        b.push(vec![("pod", "p".into())], 2.0, None);
        let a = Family::new("a", "A", Kind::Gauge);
        let mut c = Family::new("c", "C", Kind::Gauge);
        c.push(vec![], 3.0, Some(-1));
        assert_eq!(
            render(vec![c, b, a]),
            "# HELP b B\n# TYPE b counter\nb{pod=\"p\"} 2\nb{pod=\"q\"} 1\n\
             # HELP c C\n# TYPE c gauge\nc 3 -1\n"
        );
    }
}
