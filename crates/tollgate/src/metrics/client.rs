//! The engine's metrics as a `prometheus-client` collector.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::exposition::{Family, MetricKind, SampleValue};
use super::histogram::{HistogramSnapshot, BUCKETS};
use crate::Engine;

/// The engine's metrics in a service's own `prometheus_client` registry: each scrape
/// takes one [`Engine::metrics`] snapshot and encodes the same families as
/// [`Engine::prometheus`] (see the [module docs](super) for the list).
///
/// ```
/// use std::sync::Arc;
/// use prometheus_client::registry::Registry;
/// use tollgate::{metrics::EngineCollector, Engine, Policy};
///
/// let (policy, _) = Policy::from_toml("version = 1\n[[limit]]\nname = \"l\"\nrate = \"5/s\"\n")?;
/// let engine = Arc::new(Engine::new(policy)?);
/// let mut registry = Registry::default();
/// registry.register_collector(Box::new(EngineCollector::new(Arc::clone(&engine))));
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry)?;
/// assert!(text.contains("# TYPE tollgate_requests counter"));
/// assert!(text.contains("tollgate_requests_total{outcome=\"allowed\"} 0"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct EngineCollector {
    engine: Arc<Engine>,
}

impl EngineCollector {
    /// A collector of `engine`'s metrics.
    pub fn new(engine: Arc<Engine>) -> Self {
        EngineCollector { engine }
    }
}

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for family in self.engine.metrics().families() {
            encode_family(&family, &mut encoder)?;
        }
        Ok(())
    }
}

fn encode_family(f: &Family, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    let (name, kind) = match f.kind {
        // prometheus-client appends `_total` to a counter's name itself.
        MetricKind::Counter => (
            f.name.strip_suffix("_total").unwrap_or(f.name),
            MetricType::Counter,
        ),
        MetricKind::Gauge => (f.name, MetricType::Gauge),
        MetricKind::Histogram => (f.name, MetricType::Histogram),
    };
    let mut metric = encoder.encode_descriptor(name, f.help, None, kind)?;
    for s in &f.samples {
        let labels: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let series = metric.encode_family(&labels)?;
        encode_value(f.kind, &s.value, series)?;
    }
    Ok(())
}

fn encode_value(
    kind: MetricKind,
    value: &SampleValue,
    mut encoder: MetricEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    match (kind, value) {
        (MetricKind::Counter, SampleValue::Int(v)) => ConstCounter::new(*v).encode(encoder),
        (MetricKind::Counter, SampleValue::Float(v)) => ConstCounter::new(*v).encode(encoder),
        (_, SampleValue::Int(v)) => {
            ConstGauge::new(i64::try_from(*v).unwrap_or(i64::MAX)).encode(encoder)
        }
        (_, SampleValue::Float(v)) => ConstGauge::new(*v).encode(encoder),
        (_, SampleValue::Histogram(h)) => {
            let buckets: Vec<(f64, u64)> = h
                .counts
                .iter()
                .enumerate()
                .map(|(i, &c)| {
                    let bound = if i < BUCKETS {
                        HistogramSnapshot::bound_ns(i) as f64 / 1e9
                    } else {
                        f64::MAX
                    };
                    (bound, c)
                })
                .collect();
            encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                h.sum_ns as f64 / 1e9,
                h.count(),
                &buckets,
                None,
            )
        }
    }
}
