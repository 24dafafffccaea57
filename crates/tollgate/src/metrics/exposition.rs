//! Metric families as values, and their Prometheus text exposition.
//!
//! The engine's snapshot becomes a list of [`Family`] values once
//! ([`MetricsSnapshot::families`](super::MetricsSnapshot::families)); the text
//! exposition (the C ABI's and `Engine::prometheus`) and the `prometheus-client`
//! collector are both written from that list, so they cannot disagree.

use std::fmt::Write as _;

use super::histogram::{HistogramSnapshot, BUCKETS};

/// A family's Prometheus type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (resets when the process restarts). Its name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Samples in buckets, with `_bucket`, `_sum` and `_count` series; in seconds.
    Histogram,
}

impl MetricKind {
    /// The name in a `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One sample's value.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleValue {
    /// A whole number (counters and most gauges).
    Int(u64),
    /// A number with a fraction (seconds).
    Float(f64),
    /// A histogram of durations.
    Histogram(HistogramSnapshot),
}

/// One series of a family: its labels and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Label names and values, in order.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: SampleValue,
}

impl Sample {
    /// A sample without labels.
    pub fn new(value: SampleValue) -> Self {
        Sample {
            labels: Vec::new(),
            value,
        }
    }

    /// A whole-number sample without labels.
    pub fn int(value: u64) -> Self {
        Sample::new(SampleValue::Int(value))
    }

    /// The sample with one more label.
    pub fn label(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.labels.push((name, value.into()));
        self
    }
}

/// A metric family: name, help, type and its series.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// The full name (`tollgate_...`; counters end in `_total`, durations in `_seconds`).
    pub name: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// The `# TYPE`.
    pub kind: MetricKind,
    /// The series (possibly none: the family is still described).
    pub samples: Vec<Sample>,
}

impl Family {
    /// A family without series yet.
    pub fn new(name: &'static str, kind: MetricKind, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// The family with one more series.
    pub fn with(mut self, sample: Sample) -> Self {
        self.samples.push(sample);
        self
    }

    /// The family with one series per item.
    pub fn with_all(mut self, samples: impl IntoIterator<Item = Sample>) -> Self {
        self.samples.extend(samples);
        self
    }
}

/// A label value: backslash, double quote and newline escaped.
pub(super) fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text: backslash and newline escaped.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `{a="x",b="y"}` (empty for no labels), with `extra` appended (a histogram's `le`).
fn label_set(labels: &[(&'static str, String)], extra: Option<(&str, &str)>) -> String {
    if labels.is_empty() && extra.is_none() {
        return String::new();
    }
    let mut out = String::from("{");
    let mut first = true;
    for (name, value) in labels
        .iter()
        .map(|(n, v)| (*n, escape_label(v)))
        .chain(extra.map(|(n, v)| (n, v.to_owned())))
    {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{name}=\"{value}\"");
    }
    out.push('}');
    out
}

/// Seconds as the exposition writes them (shortest form that reads back exactly).
pub(super) fn seconds(ns: u64) -> String {
    format_float(ns as f64 / 1e9)
}

fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// The families in the Prometheus text exposition format, version 0.0.4: for each, its
/// `# HELP` and `# TYPE` lines and then its series.
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
        for s in &f.samples {
            match &s.value {
                SampleValue::Int(v) => {
                    let _ = writeln!(out, "{}{} {v}", f.name, label_set(&s.labels, None));
                }
                SampleValue::Float(v) => {
                    let _ = writeln!(
                        out,
                        "{}{} {}",
                        f.name,
                        label_set(&s.labels, None),
                        format_float(*v)
                    );
                }
                SampleValue::Histogram(h) => {
                    let mut cumulative = 0u64;
                    for (i, &c) in h.counts.iter().enumerate() {
                        cumulative = cumulative.wrapping_add(c);
                        let le = if i < BUCKETS {
                            seconds(HistogramSnapshot::bound_ns(i))
                        } else {
                            "+Inf".to_owned()
                        };
                        let _ = writeln!(
                            out,
                            "{}_bucket{} {cumulative}",
                            f.name,
                            label_set(&s.labels, Some(("le", &le)))
                        );
                    }
                    let labels = label_set(&s.labels, None);
                    let _ = writeln!(out, "{}_sum{labels} {}", f.name, seconds(h.sum_ns));
                    let _ = writeln!(out, "{}_count{labels} {cumulative}", f.name);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_help_are_escaped() {
        let text = render(&[Family::new("t_total", MetricKind::Counter, "a \\ b\nc")
            .with(Sample::int(1).label("limit", "a\"b\\c\nd"))]);
        assert_eq!(
            text,
            "# HELP t_total a \\\\ b\\nc\n# TYPE t_total counter\nt_total{limit=\"a\\\"b\\\\c\\nd\"} 1\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_and_end_in_inf() {
        let mut h = HistogramSnapshot::default();
        h.counts[0] = 2;
        h.counts[3] = 1;
        h.counts[BUCKETS] = 1;
        h.sum_ns = 3_000_000_000;
        let text = render(&[Family::new("d_seconds", MetricKind::Histogram, "d")
            .with(Sample::new(SampleValue::Histogram(h)).label("x", "y"))]);
        assert!(
            text.contains("d_seconds_bucket{x=\"y\",le=\"0.000000256\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{x=\"y\",le=\"0.000002048\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("d_seconds_bucket{x=\"y\",le=\"+Inf\"} 4\n"));
        assert!(text.contains("d_seconds_sum{x=\"y\"} 3\n"));
        assert!(text.contains("d_seconds_count{x=\"y\"} 4\n"));
    }
}
