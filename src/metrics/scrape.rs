//! Reading the Prometheus text format back: for `saltbridge status`, which
//! shows a running daemon's `/metrics` to a person, and for tests.
//!
//! Only what saltbridge itself writes needs to parse: `# ` lines are
//! skipped, every other line is `name{label="value",...} number`. Latency
//! percentiles are estimated from histogram buckets the way Prometheus'
//! `histogram_quantile` does (linear within the bucket).

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A line that is not in the text format.
#[derive(Debug, thiserror::Error)]
#[error("line {line} of the metrics text: {why}: {text:?}")]
pub struct ParseError {
    pub line: usize,
    pub why: &'static str,
    pub text: String,
}

/// Every sample of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: &str) -> Result<Scrape, ParseError> {
        let mut samples = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            samples.push(parse_line(line).map_err(|why| ParseError {
                line: i + 1,
                why,
                text: line.to_owned(),
            })?);
        }
        Ok(Scrape { samples })
    }

    /// The value of metric `name` whose label `key` is `value`.
    pub fn get(&self, name: &str, key: &str, value: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && s.label(key) == Some(value))
            .map(|s| s.value)
    }

    /// The value of a metric without labels.
    pub fn single(&self, name: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels.is_empty())
            .map(|s| s.value)
    }

    /// Metric `name` by the value of its label `key`.
    pub fn by_label(&self, name: &str, key: &str) -> BTreeMap<String, f64> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter_map(|s| Some((s.label(key)?.to_owned(), s.value)))
            .collect()
    }

    /// The cumulative buckets `(le, count)` of histogram `name` for the
    /// series whose label `key` is `value`, in order of `le`.
    pub fn buckets(&self, name: &str, key: &str, value: &str) -> Vec<(f64, f64)> {
        let bucket = format!("{name}_bucket");
        let mut out: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|s| s.name == bucket && s.label(key) == Some(value))
            .filter_map(|s| Some((parse_number(s.label("le")?)?, s.value)))
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// The `q` quantile (0..1) estimated from cumulative buckets, as
/// Prometheus' `histogram_quantile`: None without observations; the
/// highest finite bound when the rank falls in the `+Inf` bucket.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, cumulative) in buckets {
        if cumulative >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let in_bucket = cumulative - below;
            if in_bucket <= 0.0 {
                return Some(le);
            }
            return Some(lower + (le - lower) * (rank - below) / in_bucket);
        }
        (lower, below) = (le, cumulative);
    }
    Some(lower)
}

fn parse_number(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

fn parse_line(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("no metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remainder) = parse_labels(after)?;
        labels = parsed;
        rest = remainder;
    }
    // A timestamp may follow the value; saltbridge writes none, but allow it.
    let value = rest.split_whitespace().next().ok_or("no value")?;
    let value = parse_number(value).ok_or("the value is not a number")?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// A sample's labels, as `(key, value)` in written order.
type Labels = Vec<(String, String)>;

/// Parses `k="v",...}` and returns the labels and what follows the `}`.
fn parse_labels(mut text: &str) -> Result<(Labels, &str), &'static str> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(rest) = text.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = text.find('=').ok_or("a label has no '='")?;
        let key = text[..eq].trim().to_owned();
        let after = text[eq + 1..]
            .strip_prefix('"')
            .ok_or("a label value is not quoted")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("a label value is not closed"),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("a label value is not closed"),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((key, value));
        text = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_with_escapes_and_special_values() {
        let text = "# HELP x_total help\n# TYPE x_total counter\n\
                    x_total{sink=\"a\\\"b\",route=\"c\\\\d\"} 3\n\
                    up 1\n\
                    h_bucket{le=\"+Inf\"} 7\n";
        let s = Scrape::parse(text).unwrap();
        assert_eq!(s.samples.len(), 3);
        assert_eq!(s.get("x_total", "sink", "a\"b"), Some(3.0));
        assert_eq!(s.get("x_total", "route", "c\\d"), Some(3.0));
        assert_eq!(s.single("up"), Some(1.0));
        assert_eq!(s.buckets("h", "le", "+Inf"), vec![(f64::INFINITY, 7.0)]);
    }

    #[test]
    fn a_bad_line_is_an_error_with_its_number() {
        let err = Scrape::parse("ok 1\nbroken{a=\"x} 2\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = Scrape::parse("novalue\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(Scrape::parse("x abc\n").is_err());
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        // 10 observations: 4 at most 1 s, 10 at most 2 s.
        let b = [(1.0, 4.0), (2.0, 10.0), (f64::INFINITY, 10.0)];
        assert_eq!(quantile(&b, 0.2), Some(0.5));
        assert_eq!(quantile(&b, 0.7), Some(1.5));
        assert_eq!(quantile(&b, 1.0), Some(2.0));
        assert_eq!(quantile(&[(1.0, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
        // Beyond the last finite bound: that bound, as Prometheus does.
        assert_eq!(
            quantile(&[(1.0, 1.0), (f64::INFINITY, 5.0)], 0.99),
            Some(1.0)
        );
    }
}
